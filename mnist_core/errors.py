"""Errors a student can cause and fix, kept free of torch so the CLI can name them without loading it."""


class DataNotFoundError(RuntimeError):
    """MNIST is missing or broken; the message says where we looked and how to fix it."""


class DeviceError(RuntimeError):
    """The device asked for is not on this machine."""


class ImageError(ValueError):
    """An image that cannot be read; the message says why."""
