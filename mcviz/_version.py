"""The package's version, on the ground floor: the checkpoint writer records it without importing
the package's top."""

__version__ = "0.1.0"
