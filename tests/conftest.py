"""Shared test helpers: device parametrisation (CPU always, CUDA when present) and small graphs."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
               not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Run a test once on CPU and once on CUDA (skipped without a GPU)."""
    return request.param


@pytest.fixture
def tiny_memberships() -> pd.DataFrame:
    """Three boards over five pins; row 5 repeats row 0."""
    return pd.DataFrame({
        "board_id": ["b1", "b1", "b2", "b2", "b3", "b1"],
        "pin_id": ["p1", "p2", "p2", "p3", "p4", "p1"],
        "weight": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
