"""vmm: the mail stack in a box."""

__version__ = "0.1.0"
