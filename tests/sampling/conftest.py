"""Shared fixtures of the sampler tests: a hand-built Pin-Board graph and a small synthetic one.

The tiny graph (pins 0..7, boards 0..3; pin 7 is on no board)::

    board 0: pins 0, 1, 2          board 2: pin 5 (alone)
    board 1: pins 1, 3, 4, 5       board 3: pins 2, 6

Edge ids (sorted by (pin, board)): (0,0)=0 (1,0)=1 (1,1)=2 (2,0)=3 (2,3)=4 (3,1)=5 (4,1)=6
(5,1)=7 (5,2)=8 (6,3)=9; edge ``e`` has timestamp ``10 * e``.
"""
from __future__ import annotations

import pytest
import torch

from boardgraph.graph import PinBoardGraph

PIN_BOARD = [(0, 0), (1, 0), (2, 0), (1, 1), (3, 1), (4, 1), (5, 1), (5, 2), (2, 3), (6, 3)]
FWD, REV = ("pin", "in", "board"), ("board", "has", "pin")

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


def build_tiny(extra_user: bool = False) -> PinBoardGraph:
    g = PinBoardGraph()
    g.add_node_type("pin", [f"p{i}" for i in range(8)])
    g.add_node_type("board", [f"b{i}" for i in range(4)])
    src = torch.tensor([p for p, _ in PIN_BOARD])
    dst = torch.tensor([b for _, b in PIN_BOARD])
    order = torch.argsort(src * 4 + dst)  # eid order, so timestamps are 10 * eid
    ts = torch.empty(len(PIN_BOARD), dtype=torch.int64)
    ts[order] = torch.arange(len(PIN_BOARD)) * 10
    g.add_relation(FWD, src, dst, reverse="has", attrs={"timestamp": ts})
    if extra_user:
        g.add_node_type("user", ["u0", "u1"])
        g.add_relation(("user", "saved", "pin"), torch.tensor([0, 0, 1]), torch.tensor([1, 2, 1]), reverse="saved_by")
    return g


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(scope="session")
def make_tiny():
    """``make_tiny(extra_user=False)``: a fresh CPU copy of the tiny graph."""
    return build_tiny


@pytest.fixture
def tiny(device) -> PinBoardGraph:
    return build_tiny().to(device)


@pytest.fixture(scope="session")
def lookbook_cpu() -> PinBoardGraph:
    from boardgraph.datasets import synthetic_lookbooks

    return synthetic_lookbooks(400, 40, seed=0)


@pytest.fixture
def lookbook(lookbook_cpu, device) -> PinBoardGraph:
    return lookbook_cpu.to(device)


@pytest.fixture
def gen(device):
    """``gen(seed)``: a generator on the test's device."""
    return lambda seed=0: torch.Generator(device=device).manual_seed(seed)


@pytest.fixture(scope="session")
def chi2():
    """``chi2(observed, expected) -> p-value`` (Pearson; expected is rescaled to the same total).

    Every statistical test here asserts ``p > 1e-4``: with fixed generators the tests are
    deterministic, and a correct sampler fails one with probability 1e-4 over the choice of seed.
    """
    from scipy.stats import chisquare

    def pvalue(observed, expected) -> float:
        obs = torch.as_tensor(observed, dtype=torch.float64).cpu().numpy()
        exp = torch.as_tensor(expected, dtype=torch.float64).cpu().numpy()
        keep = exp > 0
        assert obs[~keep].sum() == 0, "observed counts where the expected probability is 0"
        exp = exp[keep] * obs.sum() / exp[keep].sum()
        return float(chisquare(obs[keep], exp).pvalue)

    return pvalue


@pytest.fixture(params=["numpy", "torch"])
def cpu_path(request, monkeypatch):
    """Runs a test on both CPU kernel paths: the numpy one (the default on CPU) and the torch one
    (the code CUDA runs), by switching ``_ops.NUMPY_CPU``."""
    from boardgraph.sampling import _ops

    monkeypatch.setattr(_ops, "NUMPY_CPU", request.param == "numpy")
    return request.param
