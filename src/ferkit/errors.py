"""Errors that the CLI turns into a one-line message and a non-zero exit code."""


class FerkitError(Exception):
    """Base class for every error ferkit reports to users."""


class InputError(FerkitError, ValueError):
    """A path that is missing, unreadable, corrupt, empty or too large."""


class ModelError(FerkitError, ValueError):
    """A model folder that is missing, malformed, or fails its SHA-256 check."""
