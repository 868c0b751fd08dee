"""Shared test helpers: device parametrisation (CPU always, CUDA when present), small graphs, one
torch thread per module, and one tiny trained run for the whole session."""
from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    bit-for-bit reproducibility is per thread count (BLAS reductions), and one thread is the
    fastest on the shared 2-core test machines."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: Size of the shared tiny run (synthetic lookbooks).
TINY_PINS, TINY_BOARDS, TINY_STEPS = 300, 30, 20


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """A tiny neighbor-alignment run on the synthetic lookbooks (300 pins, 30 boards, 20 steps),
    trained once per session and shared read-only by every module that needs a trained run."""
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.training.trainer import Trainer

    base = tmp_path_factory.getbasetemp() / "tiny_synthetic_run"
    cfg = demo_config("neighbor", base, n_pins=TINY_PINS, n_boards=TINY_BOARDS, steps=TINY_STEPS, seed=0)
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 128, "off", False
    out = Path(cfg.run.out_dir)
    if not (out / "checkpoint.pt").exists():
        Trainer(cfg).fit()
    return out
