from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from boardgraph.encoders import BoardMateAttention, gather_mates


@pytest.fixture
def attn() -> BoardMateAttention:
    torch.manual_seed(0)
    return BoardMateAttention(dim=8, num_heads=2)


def _data(b: int = 3, k: int = 4, d: int = 8):
    g = torch.Generator().manual_seed(1)
    pin = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    mates = F.normalize(torch.randn(b, k, d, generator=g), dim=-1)
    return pin, mates


def test_pin_without_mates_keeps_its_own_representation(attn):
    pin, mates = _data()
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    out, w = attn(pin, mates, mask, return_weights=True)
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1], pin[1])  # exactly the pin (already unit norm)
    assert w.shape == (3, 2, 4) and w[1].eq(0).all()
    torch.testing.assert_close(w[0].sum(-1), torch.ones(2))
    assert w[0, :, 2:].eq(0).all()  # masked mates get no weight
    assert not torch.allclose(out[0], pin[0])  # pins with mates do move


def test_zero_mates_and_nan_padding(attn):
    pin, _ = _data()
    out = attn(pin, torch.empty(3, 0, 8), torch.empty(3, 0, dtype=torch.bool))
    torch.testing.assert_close(out, pin)
    _, mates = _data()
    mates[:, 2:] = float("nan")  # padding rows hold garbage
    mask = torch.tensor([[True, True, False, False]] * 3)
    out = attn(pin, mates, mask)
    assert torch.isfinite(out).all()
    mates[:, 2:] = 0.0
    torch.testing.assert_close(attn(pin, mates, mask), out)


def test_single_mate_by_hand(attn):
    pin, mates = _data(b=1, k=2)
    mask = torch.tensor([[False, True]])
    out = attn(pin, mates, mask)
    # one mate: softmax weight 1 on it in every head -> ctx = W_o (W_v LN(mate) + b_v) + b_o
    a = attn.attn
    ctx = a.out(a.v(attn.norm_kv(mates[:, 1])))
    gate = torch.sigmoid(attn.gate(torch.cat([pin, ctx], -1)))
    torch.testing.assert_close(out, F.normalize(pin + gate * ctx, dim=-1))


def test_gradients_and_shape_errors(attn):
    pin, mates = _data()
    pin.requires_grad_(True)
    mask = torch.tensor([[True, True, False, True]] * 3)
    attn(pin, mates, mask).pow(3).sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in attn.parameters())
    assert pin.grad.any()
    with pytest.raises(ValueError, match=r"expected pin \[B, D\], mates \[B, K, D\], mask \[B, K\]"):
        attn(pin, mates, mask[:, :2])


def test_gather_mates_from_sampler_rows():
    table = torch.arange(12.0).view(4, 3)
    mates, mask = gather_mates(table, torch.tensor([[2, -1], [-1, -1], [0, 3]]))
    assert mask.tolist() == [[True, False], [False, False], [True, True]]
    assert mates.tolist() == [[[6, 7, 8], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]], [[0, 1, 2], [9, 10, 11]]]
    with pytest.raises(IndexError, match=r"mate indices must be in -1..3, got -1..4"):
        gather_mates(table, torch.tensor([[4, -1]]))


def test_on_device(attn, device):
    pin, mates = _data()
    mask = torch.tensor([[True, False, True, False], [False] * 4, [True] * 4])
    ref = attn(pin, mates, mask)
    got = attn.to(device)(pin.to(device), mates.to(device), mask.to(device))
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), ref, atol=1e-5, rtol=0)


def test_context_only_mode_excludes_the_pin():
    import torch

    from boardgraph.encoders import BoardMateAttention

    torch.manual_seed(0)
    att = BoardMateAttention(8, num_heads=2, residual=False)
    pin = torch.randn(3, 8)
    mates = torch.randn(3, 2, 8)
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    out = att(pin, mates, mask)
    # one mate: the context is that mate's value projection, whatever the query is
    out_other_query = att(torch.randn(3, 8), mates, mask)
    assert torch.allclose(out[1], out_other_query[1], atol=1e-6)
    assert torch.equal(out[2], torch.zeros(8))          # no mates: zeros, no NaN
    assert torch.allclose(out[:2].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert "residual=False" in repr(att)


def test_unprojected_values_average_the_mates_themselves():
    """project_values=False: each head's output slice is a convex combination of the mates' slices
    (so the context lies in the pins' space); with equal keys the weights are uniform."""
    torch.manual_seed(0)
    att = BoardMateAttention(8, num_heads=2, residual=False, normalize=False, project_values=False)
    assert att.attn.v is None and att.attn.out is None
    pin = torch.randn(2, 8)
    mates = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out, w = att(pin, mates, mask, return_weights=True)
    heads = out.reshape(2, 2, 4)
    expect = torch.einsum("bhk,bkhe->bhe", w, mates.reshape(2, 3, 2, 4))
    torch.testing.assert_close(heads, expect)
    torch.testing.assert_close(out[1], mates[1, 0])          # one mate: the context is that mate
    assert torch.all(w[:, :, 2] == 0) and torch.allclose(w.sum(-1), torch.ones(2, 2))
    same = mates[:, :1].expand(2, 3, 8).contiguous()          # identical keys -> uniform weights
    _, w2 = att(pin, same, torch.ones(2, 3, dtype=torch.bool), return_weights=True)
    torch.testing.assert_close(w2, torch.full((2, 2, 3), 1 / 3))
