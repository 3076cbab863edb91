"""wagtail-smi: sell AI-upscaled high-resolution copies of the images on Wagtail pages."""

__version__ = "0.1.0"
