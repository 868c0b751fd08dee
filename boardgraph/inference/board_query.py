"""How a board scores a pin: the centroid of its pins, or attention over its pins keyed by the pin.

* ``"centroid"``: ``cos(mean of the board's normalised pin embeddings, pin)``. One vector per
  board; a board that mixes several tastes is blurred into one direction between them.
* ``"attention"``: ``tau * log(mean_i exp(cos(board pin i, pin) / tau))``, a soft maximum over the
  board's pins in which each candidate attends to the board pins nearest to it (a multi-interest
  query, as DIN or PinnerSage use for user histories). ``tau`` (``objective.board_query_tau``,
  0.1) sets how soft: large ``tau`` ranks as the centroid would (the mean cosine), small ``tau``
  as the single nearest board pin.

The refinement of ``neighbor_cf`` trains with the query its run serves
(:mod:`boardgraph.training.refine`), and board completion, ``complete_the_look`` and
``place_new_pin`` score with it. Cost: the attention query compares every candidate with every
board pin, ``O(board size x candidates x E)`` against ``O(candidates x E)`` for the centroid.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["BOARD_QUERIES", "attention_scores", "attention_to_boards", "attention_complete"]

#: The board queries a run can serve (``objective.board_query``).
BOARD_QUERIES: tuple[str, ...] = ("centroid", "attention")


def attention_scores(members: Tensor, vectors: Tensor, candidates: Tensor, tau: float,
                     budget: int = 1 << 24) -> Tensor:
    """Attention-query scores of boards for candidate pins.

    Computed as ``m + tau * log(A @ exp((V_u C^T - m) / tau) / |board|)`` over the distinct board
    pins ``u`` (``A`` counts each board's pins; ``m`` the largest similarity of each candidate to
    any of them), so a batch of boards costs one ``[distinct pins, candidates]`` similarity block,
    not one per board. Exact while no board's nearest pin is more than ``87 * tau`` (in cosine)
    below the batch's nearest: always for ``tau >= 0.025``.

    Args:
        members: int64 ``[Q, L]`` each board's pins as rows of ``vectors``, ``-1`` padding.
        vectors: float ``[N, E]`` normalised pin vectors.
        candidates: float ``[C, E]`` normalised candidate vectors.
        tau: the softness (> 0), in cosine units.
        budget: most floats of a similarity block computed at once (candidates are chunked); above
            it, the ``[Q, distinct pins]`` count matrix is sparse.

    Returns:
        float ``[Q, C]``: ``tau * log(mean over the board's pins i of exp(cos(i, candidate) / tau))``
        (0 for a board without pins), differentiable in ``vectors`` and ``candidates``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    valid = members >= 0
    pins, inv = torch.unique(members[valid], return_inverse=True)
    rows = torch.nonzero(valid)[:, 0]
    ones = torch.ones_like(inv, dtype=vectors.dtype)
    if members.shape[0] * pins.numel() <= budget:   # [Q, U] board pin counts: dense while small (faster)
        counts = torch.zeros(members.shape[0], pins.numel(), device=members.device, dtype=vectors.dtype)
        counts.index_put_((rows, inv), ones, accumulate=True)
    else:
        counts = torch.sparse_coo_tensor(torch.stack([rows, inv]), ones, (members.shape[0], pins.numel()),
                                         check_invariants=False).coalesce()
    size = valid.sum(1, keepdim=True).to(vectors.dtype)
    u = vectors[pins]
    step = max(1, budget // max(pins.numel(), 1))
    out = []
    for s in range(0, candidates.shape[0], step):
        sims = u @ candidates[s:s + step].T                                          # [U, c]
        top = sims.max(0).values.detach() if sims.numel() else sims.new_zeros(sims.shape[1])
        kernel = torch.exp((sims - top) / tau)                                        # shifted: no overflow
        mean = (torch.sparse.mm(counts, kernel) if counts.is_sparse else counts @ kernel) / size.clamp(min=1)
        out.append(torch.where(size > 0, top + tau * mean.clamp(min=1e-38).log(), torch.zeros_like(mean)))
    return torch.cat(out, 1) if out else vectors.new_zeros(members.shape[0], 0)


def attention_to_boards(sims: Tensor, indptr: Tensor, indices: Tensor, tau: float) -> Tensor:
    """Attention-query score of every board for one pin, from the pin's cosine ``sims [N]`` to every
    catalogue pin and the board -> pin CSR (``indptr [B + 1]``, ``indices [M]``): float ``[B]``,
    ``tau * log(mean over the board's pins of exp(sim / tau))`` (``-inf`` for an empty board).
    Costs ``O(memberships)``."""
    indptr, indices = indptr.long().to(sims.device), indices.long().to(sims.device)
    sizes = indptr[1:] - indptr[:-1]
    board = torch.repeat_interleave(torch.arange(sizes.numel(), device=sims.device), sizes)
    top = sims.max() if sims.numel() else sims.new_zeros(())
    total = torch.zeros(sizes.numel(), device=sims.device, dtype=sims.dtype).index_add_(
        0, board, torch.exp((sims[indices] - top) / tau))
    mean = total / sizes.clamp(min=1)
    return torch.where(sizes > 0, top + tau * mean.clamp(min=1e-38).log(), torch.full_like(mean, float("-inf")))


def attention_complete(index, vectors: Tensor, members: Tensor, k: int, tau: float,
                       **search_kwargs) -> tuple[Tensor, Tensor]:
    """The ``k`` best pins for a board by the attention query, through an
    :class:`~boardgraph.inference.index.EmbeddingIndex` over ``vectors [N, E]`` (normalised): the
    candidates are each board pin's ``max(4k, 50)`` nearest pins (a pin scores at most its cosine
    to its nearest board pin), re-ranked exactly. ``members`` int64 ``[L]`` are the board's pins;
    ``search_kwargs`` (``filter``, ``exclude_ids``) go to ``index.search``.

    Returns:
        ``(rows int64 [k'], scores float [k'])``, best first; ``k' < k`` when fewer pins qualify.
    """
    res = index.search(vectors[members], max(4 * k, 50), **search_kwargs)
    rows = torch.unique(torch.as_tensor(res.rows[res.rows >= 0], dtype=torch.long))
    scores = attention_scores(members.long()[None], vectors, vectors[rows], tau)[0]
    top = scores.topk(min(k, rows.numel())).indices
    return rows[top], scores[top]

