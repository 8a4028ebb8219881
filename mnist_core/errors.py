"""Errors a student can cause and fix, kept free of torch so the CLI can name them without loading it.

Each carries its English template and values (i18n.LabError), so a page can show it in Korean."""
from .i18n import LabError


class DataNotFoundError(LabError, RuntimeError):
    """MNIST is missing or broken; the message says where we looked and how to fix it."""


class DeviceError(LabError, RuntimeError):
    """The device asked for is not on this machine."""


class ImageError(LabError, ValueError):
    """An image that cannot be read; the message says why."""


class ImageSizeError(ImageError):
    """A readable image too large or too small to be a picture of one digit; the message gives its size."""
