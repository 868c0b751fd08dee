"""Exception types raised by the samplers and the loader."""
from __future__ import annotations

from boardgraph.errors import BoardgraphError

__all__ = ["SamplingError"]


class SamplingError(BoardgraphError, ValueError):
    """A sampler or loader got an invalid argument (the message names the value and the fix)."""
