"""The one exception type qr/ raises for bad input; its message says what is wrong and how to fix it."""


class QRInputError(ValueError):
    pass
