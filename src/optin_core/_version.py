"""The version of optin_core: the one place it is written (hatch reads it)."""

__version__ = "0.2.0"
