"""Board queries (``boardgraph.inference.board_query``): attention over a board's pins against
its reference definition, the per-pin board scores and the index-backed completion."""
import math

import pytest
import torch
import torch.nn.functional as F

from boardgraph.inference.board_query import attention_complete, attention_scores, attention_to_boards
from boardgraph.inference.index import EmbeddingIndex

E = F.normalize(torch.randn(60, 8, generator=torch.Generator().manual_seed(0)), dim=1)
MEMBERS = torch.tensor([[0, 3, 7, -1], [5, -1, -1, -1], [-1, -1, -1, -1], [1, 1, 2, 4]])


def reference(members, tau):
    out = torch.zeros(members.shape[0], E.shape[0])
    for b, row in enumerate(members):
        m = row[row >= 0]
        if len(m):
            out[b] = tau * (torch.logsumexp(E[m] @ E.T / tau, 0) - math.log(len(m)))
    return out


@pytest.mark.parametrize("tau", [0.03, 0.1, 1.0])
def test_attention_scores_are_the_soft_maximum_over_the_boards_pins(tau):
    ref = reference(MEMBERS, tau)
    torch.testing.assert_close(attention_scores(MEMBERS, E, E, tau), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_scores(MEMBERS, E, E, tau, budget=7), ref, atol=1e-5, rtol=0)   # chunked
    assert attention_scores(MEMBERS, E, E, tau)[2].abs().sum() == 0       # a board without pins scores 0


def test_tau_moves_the_attention_between_the_mean_and_the_nearest_pin():
    sims = E[[0, 3, 7]] @ E.T
    torch.testing.assert_close(attention_scores(MEMBERS[:1], E, E, 100.0)[0], sims.mean(0), atol=2e-3, rtol=0)
    assert (attention_scores(MEMBERS[:1], E, E, 0.03)[0] - sims.max(0).values).abs().max() < 0.04
    with pytest.raises(ValueError, match="tau must be > 0"):
        attention_scores(MEMBERS, E, E, 0.0)


def test_gradients_are_finite():
    x = E.clone().requires_grad_()
    attention_scores(MEMBERS, x, x, 0.05).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_attention_to_boards_scores_every_board_for_one_pin():
    indptr, indices = torch.tensor([0, 3, 4, 4, 8]), torch.tensor([0, 3, 7, 5, 1, 1, 2, 4])
    got = attention_to_boards(E @ E[9], indptr, indices, 0.1)
    ref = reference(MEMBERS, 0.1)[:, 9]
    torch.testing.assert_close(got[[0, 1, 3]], ref[[0, 1, 3]], atol=1e-5, rtol=0)
    assert got[2] == float("-inf")


def test_attention_complete_through_a_flat_index_is_exact():
    index = EmbeddingIndex.build(E, [f"p{i}" for i in range(60)], kind="flat")
    members = torch.tensor([0, 3, 7])
    rows, scores = attention_complete(index, E, members, 5, 0.1, exclude_ids=["p0", "p3", "p7"])
    ref = reference(MEMBERS[:1], 0.1)[0]
    ref[members] = -math.inf
    top = ref.topk(5)
    assert rows.tolist() == top.indices.tolist()
    torch.testing.assert_close(scores, top.values, atol=1e-5, rtol=0)


def test_a_large_batch_of_boards_takes_the_sparse_path_with_the_same_scores():
    ref = reference(MEMBERS, 0.1)
    torch.testing.assert_close(attention_scores(MEMBERS, E, E, 0.1, budget=8), ref, atol=1e-5, rtol=0)
    x = E.clone().requires_grad_()
    attention_scores(MEMBERS, x, x, 0.1, budget=8).sum().backward()       # sparse counts: gradients flow
    y = E.clone().requires_grad_()
    attention_scores(MEMBERS, y, y, 0.1).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, atol=1e-5, rtol=0)
