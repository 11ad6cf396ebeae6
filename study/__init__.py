"""Run a perceptual (MOS) user study of image-to-image methods end to end."""

__version__ = "0.1.0"
