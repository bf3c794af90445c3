"""lafin-aug: landmark-guided face inpainting as training-data augmentation for landmark detectors."""
__version__ = "0.1.0"
