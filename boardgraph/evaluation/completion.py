"""Board completion (warm and cold start) on held-out memberships, and cross-modal retrieval.

**Board completion.** Memberships are held out before training
(:func:`~boardgraph.evaluation.splits.split_memberships`). Every board with held-out pins is a query; a
:class:`Scorer` gives every pin a score for it, computed from the *training* graph only. Pin
embeddings are one scorer (:class:`EmbeddingScorer`: cosine to the normalised mean of the board's
training pins, or attention over them, :mod:`boardgraph.inference.board_query`); the score-based
baselines of :mod:`boardgraph.evaluation.baselines` (random, popularity) and
:mod:`boardgraph.evaluation.baselines.cf` (ItemKNN, EASE, Pixie, BPR) are others, and all of them go through the same
protocol. There are three groups of queries (:data:`~boardgraph.schema.GROUPS`, named in tables by :data:`~boardgraph.schema.GROUP_LABELS`):

* ``warm``: the held-out memberships of pins the model trained on (through their other boards).
  A query ranks **every pin that is not cold**, minus the board's own training pins. A warm pin
  held out of board A keeps its other boards: it is a training pin and a real candidate for every
  other board, so held-out memberships of *other* boards never change a query's candidates.
* ``cold`` ("cold among new items"): the memberships of the pins held out entirely (no membership
  seen in training). A query ranks **only the cold pins**: placing a batch of new items.
* ``cold_all`` ("cold among all pins"): the same positives ranked against **every pin**, minus the
  board's training pins and its own warm held-out pins (members of the board, not negatives), as
  a new item meets the whole catalogue in production.
* When the split names its ``candidates`` (e.g. :func:`~boardgraph.evaluation.splits.split_reserved_boards`:
  only the new, cold items), ``warm`` and ``cold`` queries rank exactly those candidates (minus
  the board's training pins); ``cold_all`` still ranks every pin.
* Ranks are filtered (other positives of the query do not push a positive down) and ties count
  against the positive. Recall@K is the share of the board's positives in its top-K list, so it
  cannot exceed ``min(K, n_pos) / n_pos`` (:mod:`boardgraph.evaluation.metrics`).

Under this protocol, random scores give Recall@K close to ``K / |candidates|`` (checked by
:func:`boardgraph.evaluation.harness.sanity_checks`). An earlier version excluded every pin with a
held-out membership on *any* board from the other queries, which shrank the candidate set on
dense data (84% of the catalogue on one data set) and inflated every warm figure.

Per-board values (:class:`~boardgraph.evaluation.metrics.RankingResult`, for bootstrap CIs) and the rank of
every held-out membership (:class:`HeldOutRanks`, for slicing by an attribute of the pin) are kept.

**Cross-modal retrieval** (:func:`cross_modal`): image -> text and text -> image among the pins
that have both modalities; the positive of a pin's image is its own text and vice versa.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.graph.csr import padded_rows
from boardgraph.inference.board_query import BOARD_QUERIES, attention_scores
from boardgraph.inference.embed import board_centroids
from boardgraph.schema import GROUPS
from boardgraph.evaluation.metrics import MetricInputError, RankingResult, positive_ranks, ranking_metrics

__all__ = ["BoardCompletion", "CrossModal", "EmbeddingScorer", "HeldOutRanks", "Scorer", "board_completion",
           "candidate_masks", "cross_modal", "label_precision", "DEFAULT_KS", "CURVE_KS"]

#: Cut-offs of :func:`board_completion` by default.
DEFAULT_KS: tuple[int, ...] = (10, 50)
#: Cut-offs for Recall@K curves.
CURVE_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores every pin for query boards.

    ``score(boards, split)`` takes int64 ``boards [Q]`` and returns finite float scores
    ``[Q, N_pins]`` (higher = more likely on the board) on CPU, using only ``split.train_graph``
    (and pin content): the held-out memberships must not leak into the scores.
    """

    def score(self, boards: Tensor, split: DataSplit) -> Tensor: ...


class EmbeddingScorer:
    """Pin embeddings scored against a board's training pins by a board query
    (:mod:`boardgraph.inference.board_query`): by default the cosine to their normalised mean.

    Args:
        emb: float ``[N_pins, E]`` pin embeddings (any device; normalised here, scored on CPU).
            A zero row (a pin without an embedding) scores 0 against every board.
        query: ``"centroid"`` or ``"attention"`` (a soft maximum over the board's pins); tau: its softness.
    """

    def __init__(self, emb: Tensor, query: str = "centroid", tau: float = 0.1) -> None:
        if not isinstance(emb, Tensor) or emb.dim() != 2:
            raise MetricInputError(f"emb must be a 2-D tensor [N_pins, E], got "
                                   f"{tuple(getattr(emb, 'shape', ()))}")
        if query not in BOARD_QUERIES:
            raise MetricInputError(f"unknown board query {query!r}; choose one of {list(BOARD_QUERIES)}")
        self.emb = F.normalize(emb.detach().float().cpu(), dim=1)
        self.query, self.tau = query, tau
        self._boards: tuple[PinBoardGraph, Tensor] | None = None

    def board_embeddings(self, split: DataSplit) -> Tensor:
        """``[N_boards, E]`` normalised mean embedding of each board's training pins (0 if none);
        computed once per split (:meth:`score` runs once per chunk of query boards)."""
        if self._boards is None or self._boards[0] is not split.train_graph:
            self._boards = (split.train_graph, board_centroids(self.emb, split.train_graph))
        return self._boards[1]

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        n = split.graph.num_nodes("pin")
        if self.emb.shape[0] != n:
            raise MetricInputError(f"emb has {self.emb.shape[0]} rows but the graph has {n} pins; "
                                   f"embed every pin (row i = pin i)")
        if self.query == "attention":
            indptr, indices, _ = split.train_graph.csr(("board", "has", "pin"))
            return attention_scores(padded_rows(indptr.long(), indices.long(), boards.long()), self.emb, self.emb,
                                    self.tau)
        return self.board_embeddings(split)[boards] @ self.emb.T


@dataclass
class HeldOutRanks:
    """The rank of every scored held-out membership of one group (one row per ``(pin, board)``).

    Attributes:
        pins, boards: int64 ``[H]`` the held-out membership.
        ranks: int64 ``[H]`` filtered rank of the pin in its board's query (1 = top; other
            held-out pins of the board do not push it down; ties count against it).
    """

    pins: Tensor
    boards: Tensor
    ranks: Tensor

    def __len__(self) -> int:
        return int(self.pins.numel())

    def recall(self, k: int) -> Tensor:
        """float64 ``[H]``: 1 where the pin is in its board's top ``k``, else 0."""
        return (self.ranks <= k).double()

    def reciprocal_rank(self) -> Tensor:
        """float64 ``[H]``: ``1 / rank``."""
        return 1.0 / self.ranks.double()

    def frame(self) -> pd.DataFrame:
        """Columns ``pin``, ``board``, ``rank`` (node indices; map to ids with ``graph.ids``)."""
        return pd.DataFrame({"pin": self.pins.numpy(), "board": self.boards.numpy(), "rank": self.ranks.numpy()})


@dataclass
class BoardCompletion:
    """Board completion of one model on one split, per query group (:data:`GROUPS`).

    Attributes:
        warm, cold, cold_all: metric name -> :class:`~boardgraph.evaluation.metrics.RankingResult` with one
            value per query board (``"recall@K"``, ``"hit_rate@K"``, ``"ndcg@K"`` for every K,
            ``"mrr"``). ``cold`` ranks the new items only, ``cold_all`` the whole catalogue.
        warm_boards, cold_boards, cold_all_boards: int64 ``[Q]`` the query boards, aligned with
            the per-query values.
        warm_pairs, cold_pairs, cold_all_pairs: the rank of every held-out membership (:class:`HeldOutRanks`).
        ks: the cut-offs.
    """

    warm: dict[str, RankingResult]
    cold: dict[str, RankingResult]
    warm_boards: Tensor
    cold_boards: Tensor
    warm_pairs: HeldOutRanks | None = None
    cold_pairs: HeldOutRanks | None = None
    ks: tuple[int, ...] = field(default=DEFAULT_KS)
    cold_all: dict[str, RankingResult] | None = None
    cold_all_boards: Tensor | None = None
    cold_all_pairs: HeldOutRanks | None = None

    def __post_init__(self) -> None:
        if self.cold_all is None:  # built by hand with two groups: an empty third one
            self.cold_all = _concat([], tuple(self.ks))
            self.cold_all_boards = torch.zeros(0, dtype=torch.long)

    def metrics(self, group: str) -> dict[str, RankingResult]:
        """The metrics of ``group`` (``warm``, ``cold`` or ``cold_all``) by name."""
        return getattr(self, _check_group(group))

    def boards(self, group: str) -> Tensor:
        """The query boards of ``group`` (int64 ``[Q]``)."""
        return getattr(self, f"{_check_group(group)}_boards")

    def pairs(self, group: str) -> HeldOutRanks:
        """The held-out memberships of ``group`` and their ranks."""
        return getattr(self, f"{_check_group(group)}_pairs")

    def summary(self) -> dict[str, float]:
        """``{"<group>_<metric>": mean}`` for every group, and ``cold_all_warm_recall@10`` (cold
        among all pins / warm, both ranked against the catalogue) when defined."""
        out = {f"{g}_{k}": v.mean for g in GROUPS for k, v in self.metrics(g).items()}
        w, c = self.warm.get("recall@10"), self.metrics("cold_all").get("recall@10")
        if w is not None and c is not None and w.n_scored and c.n_scored and w.mean > 0:
            out["cold_all_warm_recall@10"] = c.mean / w.mean
        return out

    def curve(self, group: str = "warm", metric: str = "recall") -> dict[int, float]:
        """``{K: mean metric@K}`` over the cut-offs (a Recall@K curve)."""
        m = self.metrics(group)
        return {k: m[f"{metric}@{k}"].mean for k in self.ks}

    def per_query(self, group: str = "warm") -> pd.DataFrame:
        """One row per query board: ``board`` (node index), ``n_heldout`` and every metric
        (``NaN`` for skipped queries), for slicing by an attribute of the board."""
        pairs = self.pairs(group)
        boards = self.boards(group)
        n_held = torch.zeros(0, dtype=torch.long) if pairs is None else torch.bincount(
            torch.searchsorted(boards, pairs.boards), minlength=boards.numel())
        cols = {"board": boards.numpy()}
        if pairs is not None:
            cols["n_heldout"] = n_held.numpy()
        cols.update({name: r.per_query.cpu().numpy() for name, r in self.metrics(group).items()})
        return pd.DataFrame(cols)


def _check_group(group: str) -> str:
    if group not in GROUPS:
        raise MetricInputError(f"group must be one of {list(GROUPS)}, got {group!r}")
    return group


def _as_scorer(model: Tensor | Scorer) -> Scorer:
    if isinstance(model, Tensor):
        return EmbeddingScorer(model)
    if not callable(getattr(model, "score", None)):
        raise TypeError(f"board_completion needs pin embeddings [N_pins, E] or a Scorer (an object with "
                        f"score(boards, split) -> [Q, N_pins]), got {type(model).__name__}")
    return model


def candidate_masks(split: DataSplit) -> dict[str, Tensor]:
    """bool ``[N_pins]`` per group: the pins a query of that group may rank (before its own
    training pins and, for ``cold_all``, its own warm held-out pins are taken out).

    * ``warm``: every pin that is not cold (or ``split.candidates`` when the split names them);
    * ``cold``: the cold pins (or ``split.candidates``);
    * ``cold_all``: every pin.

    None of them depends on which memberships of *other* boards are held out.
    """
    n = split.graph.num_nodes("pin")
    is_cold = torch.zeros(n, dtype=torch.bool)
    is_cold[split.cold_pins.long().cpu()] = True
    is_cold[split.cold_edges[0].long().cpu()] = True
    if split.candidates is not None:
        given = split.candidates.cpu().bool()
        return {"warm": given, "cold": given, "cold_all": torch.ones(n, dtype=torch.bool)}
    return {"warm": ~is_cold, "cold": is_cold, "cold_all": torch.ones(n, dtype=torch.bool)}


def _rows_mask(n_rows: int, n_cols: int, rows: Tensor, cols: Tensor) -> Tensor:
    m = torch.zeros(n_rows, n_cols, dtype=torch.bool)
    m[rows, cols] = True
    return m


def label_precision(scores: Tensor, exclude: Tensor, board_label: Tensor, pin_label: Tensor,
                    ks: tuple[int, ...]) -> dict[str, RankingResult]:
    """``label_precision@K`` for every K: the share of each query's top-K candidates whose label
    equals the query board's label (e.g. the board's hidden style on the synthetic lookbooks).

    Unlike Recall@K it is not capped by how many equally plausible pins a board has: a scorer that
    fills the top K with pins of the board's style scores 1 however many such pins there are.

    Args:
        scores: float ``[Q, N]``; exclude: bool ``[Q, N]`` pins that are not candidates of the query.
        board_label: int64 ``[Q]`` each query board's label, ``-1`` when unknown (the query is skipped).
        pin_label: int64 ``[N]`` each pin's label (``-1``: unknown, never a match).
        ks: the cut-offs; a query with fewer candidates than K averages over those it has.
    """
    cand = (~exclude).sum(1)
    top = scores.masked_fill(exclude, -math.inf).topk(min(max(ks), scores.shape[1]), dim=1).indices
    match = (pin_label[top] == board_label[:, None]) & (board_label[:, None] >= 0)
    valid = (board_label >= 0) & (cand > 0)
    out = {}
    for k in ks:
        n = cand.clamp(max=k).clamp(min=1)
        hits = (match[:, :k] & (torch.arange(min(k, top.shape[1])) < n[:, None])).sum(1)
        out[f"label_precision@{k}"] = RankingResult(f"label_precision@{k}", torch.where(
            valid, hits.double() / n.double(), torch.full_like(hits, math.nan, dtype=torch.float64)), valid)
    return out


def board_completion(model: Tensor | Scorer, split: DataSplit, ks: tuple[int, ...] = DEFAULT_KS,
                     chunk_size: int = 1024, labels: tuple[Tensor, Tensor] | None = None) -> BoardCompletion:
    """Board-completion metrics on ``split`` (see the module docstring for the protocol).

    Args:
        model: pin embeddings ``[N_pins, E]`` (scored by :class:`EmbeddingScorer`) or a :class:`Scorer`.
        split: the split the model was trained on.
        ks: cut-offs of Recall@K, hit-rate@K and NDCG@K (e.g. :data:`CURVE_KS` for curves).
        chunk_size: query boards scored at once (peak memory ~ a few ``chunk_size * N_pins``).
            Each board is scored once for all the groups it takes part in.
        labels: ``(board_label int64 [N_boards], pin_label int64 [N_pins])`` (``-1``: unknown) to
            also score :func:`label_precision` (``"label_precision@K"``) in every group.

    Raises:
        MetricInputError: embeddings of the wrong size, scores of the wrong shape or non-finite, bad ks.
        TypeError: ``model`` is neither a tensor nor a scorer.
    """
    scorer = _as_scorer(model)
    g = split.train_graph
    n_pins, n_boards = g.num_nodes("pin"), g.num_nodes("board")
    indptr, indices, _ = g.csr(("board", "has", "pin"))
    indptr, indices = indptr.long().cpu(), indices.long().cpu()
    deg = indptr[1:] - indptr[:-1]
    cands = candidate_masks(split)
    edges = {"warm": split.heldout, "cold": split.cold_edges, "cold_all": split.cold_edges}
    queries: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    for name in GROUPS:
        pin, board = (t.long().cpu() for t in edges[name])
        keep = deg[board] > 0  # a board needs training pins to describe it
        pin, board = pin[keep], board[keep]
        queries[name] = (pin, board, torch.unique(board))
    warm_pin, warm_board = queries["warm"][:2]   # a cold_all board's own warm held-out pins, to leave out
    every = torch.unique(torch.cat([q[2] for q in queries.values()]))
    parts: dict[str, list[dict[str, RankingResult]]] = {name: [] for name in GROUPS}
    pair_ranks = {name: torch.empty(queries[name][0].numel(), dtype=torch.long) for name in GROUPS}
    for s in range(0, every.numel(), chunk_size):
        qb = every[s:s + chunk_size]
        scores = scorer.score(qb, split).float().cpu()
        if scores.shape != (qb.numel(), n_pins):
            raise MetricInputError(f"scorer {type(scorer).__name__} returned scores of shape "
                                   f"{tuple(scores.shape)} for {qb.numel()} boards and {n_pins} pins")
        lo, hi = int(qb[0]), int(qb[-1])
        for name in GROUPS:
            pin, board, gb = queries[name]
            sel = gb[(gb >= lo) & (gb <= hi)]            # this group's boards in the chunk, sorted
            if sel.numel() == 0:
                continue
            rows = torch.searchsorted(qb, sel)            # their rows in ``scores``
            local = torch.full((n_boards,), -1, dtype=torch.long)
            local[sel] = torch.arange(sel.numel())
            in_chunk = local[board] >= 0
            pos = _rows_mask(sel.numel(), n_pins, local[board[in_chunk]], pin[in_chunk])
            exclude = ~cands[name].expand_as(pos) & ~pos
            starts, lens = indptr[sel], deg[sel]          # the board's training pins
            q_of = torch.repeat_interleave(torch.arange(sel.numel()), lens)
            offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
            exclude[q_of, indices[torch.repeat_interleave(starts, lens) + offs]] = True
            if name == "cold_all":                        # the board's warm held-out pins are members too
                w = local[warm_board] >= 0
                exclude[local[warm_board[w]], warm_pin[w]] = True
            sub = scores[rows]
            parts[name].append(ranking_metrics(sub, pos, ks=ks, exclude=exclude, chunk_size=chunk_size))
            if labels is not None:
                parts[name][-1].update(label_precision(sub, exclude, labels[0][sel], labels[1], ks))
            ranks = positive_ranks(sub, pos, exclude, chunk_size=chunk_size)
            pair_ranks[name][in_chunk] = ranks[local[board[in_chunk]], pin[in_chunk]]
    res: dict[str, tuple] = {}
    for name in GROUPS:
        pin, board, gb = queries[name]
        row = torch.full((n_boards,), -1, dtype=torch.long)
        row[gb] = torch.arange(gb.numel())
        order = torch.argsort(row[board] * n_pins + pin)
        res[name] = (_concat(parts[name], ks, labels), gb, HeldOutRanks(pin[order], board[order], pair_ranks[name][order]))
    return BoardCompletion(warm=res["warm"][0], cold=res["cold"][0], warm_boards=res["warm"][1],
                           cold_boards=res["cold"][1], warm_pairs=res["warm"][2], cold_pairs=res["cold"][2],
                           ks=tuple(ks), cold_all=res["cold_all"][0], cold_all_boards=res["cold_all"][1],
                           cold_all_pairs=res["cold_all"][2])


def _concat(parts: list[dict[str, RankingResult]], ks: tuple[int, ...],
            labels: tuple[Tensor, Tensor] | None = None) -> dict[str, RankingResult]:
    if not parts:  # no query board in this group: empty results (label precision too, when scored)
        empty = ranking_metrics(torch.zeros(0, 1), torch.zeros(0, 1, dtype=torch.bool), ks=ks)
        if labels is not None:
            none = torch.zeros(0, dtype=torch.long)
            empty.update(label_precision(torch.zeros(0, 1), torch.zeros(0, 1, dtype=torch.bool), none, none, ks))
        return empty
    if len(parts) == 1:
        return parts[0]
    return {name: RankingResult(name, torch.cat([p[name].per_query for p in parts]),
                                torch.cat([p[name].valid for p in parts])) for name in parts[0]}


# ------------------------------------------------------------------------------ cross-modal retrieval
@dataclass
class CrossModal:
    """Cross-modal retrieval among the pins that have both an image and a text.

    Attributes:
        image_to_text, text_to_image: metric name (``"recall@K"`` per K, ``"mrr"``) ->
            :class:`~boardgraph.evaluation.metrics.RankingResult` with one value per query pin.
        pins: int64 ``[M]`` the pins taking part, aligned with the per-query values.
    """

    image_to_text: dict[str, RankingResult]
    text_to_image: dict[str, RankingResult]
    pins: Tensor

    def summary(self) -> dict[str, float]:
        """``{"i2t_<metric>", "t2i_<metric>": mean}``."""
        out = {f"i2t_{k}": v.mean for k, v in self.image_to_text.items()}
        out.update({f"t2i_{k}": v.mean for k, v in self.text_to_image.items()})
        return out


def cross_modal(image_emb: Tensor, text_emb: Tensor, present_mask: Tensor, ks: tuple[int, ...] = (1, 10),
                chunk_size: int = 1024) -> CrossModal:
    """Image -> text and text -> image retrieval: Recall@K and MRR, ties against the positive.

    Among the ``M`` pins having both modalities, each pin's image queries all ``M`` texts by
    cosine similarity (its own text is the one positive), and each text queries all images.

    Args:
        image_emb, text_emb: float ``[N, E]`` per-modality embeddings (normalised here).
        present_mask: bool ``[N]`` (pin has both) or ``[N, >=2]`` with image and text in columns 0
            and 1 (the order of :data:`~boardgraph.encoders.registry.MODALITIES`).
        ks: Recall@K cut-offs.
        chunk_size: query pins scored at once (memory ~ ``chunk_size * M``).

    Raises:
        MetricInputError: shapes do not match, or no pin has both modalities.
    """
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape:
        raise MetricInputError(f"image_emb and text_emb must both be [N, E], got {tuple(image_emb.shape)} "
                               f"and {tuple(text_emb.shape)}")
    mask = torch.as_tensor(present_mask, dtype=torch.bool).cpu()
    if mask.dim() == 2 and mask.shape[1] >= 2:
        mask = mask[:, 0] & mask[:, 1]
    if mask.shape != (image_emb.shape[0],):
        raise MetricInputError(f"present_mask must be [N] or [N, >=2] with N={image_emb.shape[0]}, got "
                               f"{tuple(torch.as_tensor(present_mask).shape)}")
    pins = torch.nonzero(mask).squeeze(1)
    if pins.numel() == 0:
        raise MetricInputError("no pin has both an image and a text; cross-modal retrieval needs both")
    img = F.normalize(image_emb.detach().float().cpu()[pins], dim=1)
    txt = F.normalize(text_emb.detach().float().cpu()[pins], dim=1)
    names = [f"recall@{k}" for k in ks] + ["mrr"]

    def retrieve(q: Tensor, c: Tensor) -> dict[str, RankingResult]:
        parts = []
        for s in range(0, q.shape[0], chunk_size):
            scores = q[s:s + chunk_size] @ c.T
            pos = torch.zeros_like(scores, dtype=torch.bool)
            pos[torch.arange(scores.shape[0]), torch.arange(s, s + scores.shape[0])] = True
            res = ranking_metrics(scores, pos, ks=ks, chunk_size=chunk_size)
            parts.append({n: res[n] for n in names})
        return _concat(parts, ks) if len(parts) > 1 else parts[0]

    return CrossModal(retrieve(img, txt), retrieve(txt, img), pins)
