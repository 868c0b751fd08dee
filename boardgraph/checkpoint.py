"""Checkpoints: written atomically, read with ``weights_only=True`` (never arbitrary pickle), and
refused when they come from a run with another model config."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from boardgraph.graph.errors import BoardgraphError

__all__ = ["CheckpointMismatchError", "save_checkpoint", "load_checkpoint"]


class CheckpointMismatchError(BoardgraphError, ValueError):
    """The checkpoint was written by a run whose model config differs from this one."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointMismatchError: ``fingerprint`` is given and differs from the checkpoint's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if fingerprint is not None and ck.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by a run with another model config (fingerprint "
            f"{ck.get('fingerprint')}, this config {fingerprint}); resume with the config saved beside it "
            f"({path.parent / 'config.yaml'}) or train into a new run.out_dir")
    return ck
