"""Fixtures shared by the tests of the public API: one tiny trained run for the whole session."""
from __future__ import annotations

from pathlib import Path

import pytest

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
