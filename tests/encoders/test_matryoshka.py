from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import matryoshka_embeddings, matryoshka_loss, matryoshka_losses, truncate_embedding


def test_truncate_renormalises_by_hand():
    e = torch.tensor([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(truncate_embedding(e, 2), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))  # zero stays zero
    torch.testing.assert_close(truncate_embedding(e, 3), e / torch.tensor([[13.0], [1.0]]))
    assert set(matryoshka_embeddings(e, (1, 3))) == {1, 3}
    with pytest.raises(ValueError, match="cannot truncate a 3-d embedding to 4 dims"):
        truncate_embedding(e, 4)


def test_loss_is_the_weighted_sum():
    losses = {64: torch.tensor(1.0), 128: torch.tensor(2.0), 256: torch.tensor(4.0)}
    assert matryoshka_loss(losses).item() == 7.0
    assert matryoshka_loss(losses, {64: 0.5, 256: 0.25}).item() == pytest.approx(0.5 + 2.0 + 1.0)
    with pytest.raises(ValueError, match=r"weights for dims \[32\] have no loss"):
        matryoshka_loss(losses, {32: 1.0})
    with pytest.raises(ValueError, match="no per-dim losses"):
        matryoshka_loss({})


def test_losses_hook_feeds_truncated_embeddings():
    a = torch.tensor([[3.0, 4.0, 0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    cos = lambda x, y: (x * y).sum()  # noqa: E731
    out = matryoshka_losses(cos, a, b, dims=(1, 2, 4))
    assert out[1].item() == pytest.approx(1.0)
    assert out[2].item() == pytest.approx(0.6)
    assert out[4].item() == pytest.approx(3.0 / 26 ** 0.5)
