"""The version of the charter-sdk distribution, in its own module so every part of the SDK can read it."""

__version__ = "0.1.0"
