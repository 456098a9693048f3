"""Native dependencies imported on first use, so a missing or broken wheel fails one feature with a clear
message instead of making the whole pack fail to load in ComfyUI."""

from functools import cache


@cache
def opencv():
    try:
        import cv2
    except Exception as err:  # ImportError, or a broken binary wheel
        raise ImportError(f"this step needs OpenCV ({type(err).__name__}: {err}); install it with "
                          f"`pip install \"opencv-contrib-python-headless<5\"` (one OpenCV wheel per "
                          f"environment)") from None
    return cv2
