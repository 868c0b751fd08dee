"""Two CPU processes (gloo): gathering with gradient reproduces the single-process global batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from boardgraph.objectives import ClipLoss, NeighborAlignmentLoss


def _data():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g),
            torch.tensor([[0], [0], [1], [2], [3], [3], [4], [5]]))


def _worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    img, txt, boards = _data()
    sl = slice(rank * 4, rank * 4 + 4)
    a, b = img[sl].clone().requires_grad_(), txt[sl].clone().requires_grad_()
    clip = ClipLoss()(a, b)
    clip.backward()
    a2 = img[sl].clone().requires_grad_()
    nb = NeighborAlignmentLoss()(a2, txt[sl], boards[sl])["mates"]
    nb.backward()
    a3 = img[sl].clone().requires_grad_()
    sym = NeighborAlignmentLoss(symmetric=True)(a3, txt[sl], boards[sl])["mates"]
    sym.backward()
    torch.save({"clip": clip.detach(), "grad": a.grad, "nb": nb.detach(), "nb_grad": a2.grad,
                "sym": sym.detach(), "sym_grad": a3.grad}, f"{out}/{rank}.pt")
    dist.barrier()  # no rank tears down while the other is still in a collective
    dist.destroy_process_group()


def test_two_process_gather_matches_global_batch(tmp_path):
    init = f"file://{tmp_path}/store"
    mp.spawn(_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    img, txt, boards = _data()
    a = img.clone().requires_grad_()
    ref = ClipLoss(gather=False)(a, txt)
    ref.backward()
    a2 = img.clone().requires_grad_()
    ref_nb = NeighborAlignmentLoss(gather=False)(a2, txt, boards)["mates"]
    ref_nb.backward()
    a3 = img.clone().requires_grad_()
    ref_sym = NeighborAlignmentLoss(gather=False, symmetric=True)(a3, txt, boards)["mates"]
    ref_sym.backward()
    for rank in range(2):
        r = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert r["clip"].item() == pytest.approx(ref.item(), rel=1e-5)
        assert r["nb"].item() == pytest.approx(ref_nb.item(), rel=1e-5)
        # every rank computes the global loss; the gather's backward sums the ranks' gradients
        sl = slice(rank * 4, rank * 4 + 4)
        assert torch.allclose(r["grad"], 2 * a.grad[sl], atol=1e-6)
        assert torch.allclose(r["nb_grad"], 2 * a2.grad[sl], atol=1e-6)
        assert r["sym"].item() == pytest.approx(ref_sym.item(), rel=1e-5)   # both directions gathered
        assert torch.allclose(r["sym_grad"], 2 * a3.grad[sl], atol=1e-6)
