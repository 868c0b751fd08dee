"""Exception types raised by the encoders.

Every message names the offending value and ends with ``Fix: ...`` saying what to change.
"""
from __future__ import annotations

from boardgraph.errors import BoardgraphError

__all__ = ["EncoderError", "EncoderConfigError", "EncoderProtocolError", "UnknownEncoderError",
           "MissingDependencyError", "FeatureCacheError"]


class EncoderError(BoardgraphError):
    """Base class of the encoder errors. ``fix`` holds the sentence on how to fix the input."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        self.fix = fix
        super().__init__(message if not fix else f"{message}. Fix: {fix}")


class EncoderConfigError(EncoderError, ValueError):
    """A config value is invalid (bad path, unknown timm model, unknown pooling, no fields, ...)."""


class EncoderProtocolError(EncoderError, TypeError):
    """A module given as a tower does not follow the tower protocol (see :mod:`.registry`)."""


class UnknownEncoderError(EncoderError, KeyError):
    """``build_encoder`` was asked for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(EncoderError, ImportError):
    """An optional encoder needs a package that is not installed."""


class FeatureCacheError(EncoderError, RuntimeError):
    """A feature cache is missing, incomplete, or was built by different towers."""
