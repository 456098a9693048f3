"""Hide a QR code invisibly in a picture with a trained CNN, and read it back."""
