"""impasto: neural style transfer by optimising the image through VGG19 (Gatys et al.)."""

__version__ = "0.1.0"
