"""Polyvore fill-in-the-blank (FITB) scoring from pin embeddings.

A question hides one item of an outfit and offers candidates (up to 5, the hidden item among
them); the remaining items of the outfit are the context. Every candidate is scored by its
cosine similarity to the context, and the question earns

    credit = 1 / #ties   if the true item is among the top-scoring candidates, else 0

where ``#ties`` counts the candidates whose score equals the top score exactly. Item texts recur
(1,037 duplicates, 140 empty names), so content-only embeddings of different items can be
identical; ties are never broken by candidate order (the true item is always listed last) nor by
``argmax``. Candidates with bit-identical embeddings always tie: their score is taken from one
of them instead of relying on a matrix product to round them identically.

**Scores.** A candidate's score is the mean over the context items of its cosine similarity to
each of them (the average pairwise compatibility of the Polyvore literature). The cosine to the
normalised mean of the normalised context embeddings (the way :mod:`boardgraph.evaluation.completion`
describes a board) is the same sum divided by the norm of the context sum, a positive constant
per question, so it ranks the candidates of a question identically and earns the same credits;
only the mean is offered. A question without resolved context (a one-item outfit) scores every
candidate 0: all tie and the credit is ``1 / n_candidates``.

**Question sets.** Only questions whose hidden item and candidates all resolve are scored (the
loader's ``status`` ``"full"`` or ``"partial"``; see
:data:`boardgraph.datasets.polyvore.FITB_STATUSES`); their context is the resolved context.
*Strict* accuracy averages over the ``"full"`` questions (all context present), *relaxed*
accuracy over ``"full"`` and ``"partial"`` ones. On the shared data that is 973 and 5,633
questions; random guessing scores ``mean(1 / n_candidates)`` (about 0.20; a few questions have
fewer than 5 candidates).

**Your own questions.** :func:`make_fitb_questions` builds questions of the same table format from
any boards of a graph, with negatives drawn among pins of the hidden pin's category (or any
attribute): FITB for another data set, or a validation set carved from training outfits to
choose settings on without touching the test questions.

Training must not see the outfits the questions are built from: :func:`fitb_touched` lists the
outfits and items any question mentions, :func:`exclude_fitb` drops their memberships from a
graph while keeping every node (embedding rows stay aligned).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.graph import MEMBER
from boardgraph.graph.errors import BoardgraphError, UnknownIdError
from boardgraph.evaluation.stats import BootstrapResult, bootstrap_ci

if TYPE_CHECKING:
    from boardgraph.datasets.polyvore import PolyvoreData
    from boardgraph.graph import PinBoardGraph
    from boardgraph.graph.idmap import IdMap

__all__ = ["FitbError", "FitbResult", "exclude_fitb", "fill_in_the_blank", "fitb_touched", "make_fitb_questions"]

SCORED_STATUSES = ("full", "partial")
_REQUIRED = ("question_id", "answer_id", "candidate_ids", "resolved_context_ids", "status")


class FitbError(BoardgraphError, ValueError):
    """Bad input to FITB scoring: wrong embedding shape, missing columns, unknown item ids."""


@dataclass(frozen=True)
class FitbResult:
    """Per-question FITB credits of one embedding.

    Attributes:
        question_ids: int64 ``[Q]`` ``question_id`` of every scored question (full and partial),
            in the order of the question table.
        credit: float64 ``[Q]`` ``1 / n_ties`` when the true item is among the top-scoring
            candidates, else 0.
        n_ties: int64 ``[Q]`` number of candidates sharing the top score.
        n_candidates: int64 ``[Q]`` candidates of each question (chance credit is
            ``1 / n_candidates``).
        full: bool ``[Q]`` the question resolves fully (it belongs to the strict set).
        n_unresolved: questions of the table that could not be scored.
    """

    question_ids: Tensor
    credit: Tensor
    n_ties: Tensor
    n_candidates: Tensor
    full: Tensor
    n_unresolved: int

    # -- the two question sets ------------------------------------------------------------------
    @property
    def strict(self) -> Tensor:
        """float64 ``[n_strict]`` credits of the fully resolved questions."""
        return self.credit[self.full]

    @property
    def relaxed(self) -> Tensor:
        """float64 ``[n_relaxed]`` credits of every scored question (full and partial)."""
        return self.credit

    @property
    def n_strict(self) -> int:
        return int(self.full.sum())

    @property
    def n_relaxed(self) -> int:
        return int(self.credit.numel())

    @property
    def accuracy_strict(self) -> float:
        """Mean credit over the full questions (``NaN`` when there is none)."""
        return float(self.strict.mean()) if self.n_strict else float("nan")

    @property
    def accuracy_relaxed(self) -> float:
        """Mean credit over the full and partial questions (``NaN`` when there is none)."""
        return float(self.relaxed.mean()) if self.n_relaxed else float("nan")

    def chance(self, which: Literal["strict", "relaxed"] = "relaxed") -> float:
        """Expected accuracy of random guessing, ``mean(1 / n_candidates)`` over the set."""
        self._set(which)
        n = self.n_candidates[self.full] if which == "strict" else self.n_candidates
        return float((1.0 / n.double()).mean()) if n.numel() else float("nan")

    def ci(self, which: Literal["strict", "relaxed"] = "strict", n_boot: int = 1000, seed: int = 0,
           ci: float = 0.95) -> BootstrapResult:
        """Bootstrap confidence interval of the accuracy (see :func:`boardgraph.evaluation.stats.bootstrap_ci`)."""
        return bootstrap_ci(self._set(which), n_boot=n_boot, seed=seed, ci=ci)

    def _set(self, which: str) -> Tensor:
        if which not in ("strict", "relaxed"):
            raise FitbError(f"which must be 'strict' or 'relaxed', got {which!r}")
        return self.strict if which == "strict" else self.relaxed

    def summary(self) -> dict[str, float | int]:
        """Flat metrics for an experiment table: accuracies, question counts and chance levels."""
        return {"fitb_strict": self.accuracy_strict, "fitb_relaxed": self.accuracy_relaxed,
                "fitb_n_strict": self.n_strict, "fitb_n_relaxed": self.n_relaxed,
                "fitb_chance_strict": self.chance("strict"),
                "fitb_chance_relaxed": self.chance("relaxed")}

    def to_frame(self) -> pd.DataFrame:
        """One row per scored question: ``question_id``, ``full``, ``n_candidates``, ``n_ties``,
        ``credit``."""
        return pd.DataFrame({"question_id": self.question_ids.numpy(), "full": self.full.numpy(),
                             "n_candidates": self.n_candidates.numpy(),
                             "n_ties": self.n_ties.numpy(), "credit": self.credit.numpy()})

    def __repr__(self) -> str:
        return (f"FitbResult(strict={self.accuracy_strict:.4f} on {self.n_strict}, "
                f"relaxed={self.accuracy_relaxed:.4f} on {self.n_relaxed})")


# ------------------------------------------------------------------------------------- scoring
def _question_table(questions: pd.DataFrame | PolyvoreData,
                    graph: PinBoardGraph | IdMap | None) -> tuple[pd.DataFrame, Any]:
    if not isinstance(questions, pd.DataFrame):  # PolyvoreData
        graph = questions.graph if graph is None else graph
        questions = questions.fitb
    missing = [c for c in _REQUIRED if c not in questions.columns]
    if missing:
        raise FitbError(f"the question table lacks column(s) {missing}; pass PolyvoreData.fitb "
                        f"or a table with {list(_REQUIRED)}")
    if graph is None:
        raise FitbError("no graph to map item ids to embedding rows; load Polyvore with "
                        "build_graph=True or pass graph=")
    return questions, graph


def _pad(lists: list[tuple[str, ...]], index: Any) -> Tensor:
    """int64 ``[Q, L]`` embedding rows of id tuples, ``-1`` padding."""
    width = max((len(t) for t in lists), default=0)
    flat = [i for t in lists for i in t]
    try:
        rows = (index.index("pin", flat) if hasattr(index, "num_nodes") else index.index(flat)) \
            if flat else torch.zeros(0, dtype=torch.long)
    except UnknownIdError as exc:
        raise FitbError(f"a question names an item the graph does not have: {exc}; score only "
                        f"resolved questions against the graph built by load_polyvore") from exc
    out = torch.full((len(lists), width), -1, dtype=torch.long)
    lengths = torch.tensor([len(t) for t in lists], dtype=torch.long)
    mask = torch.arange(width)[None, :] < lengths[:, None]
    out[mask] = rows
    return out


def _score_chunk(emb: Tensor, cand: Tensor, ctx: Tensor) -> Tensor:
    """float64 ``[C, K]`` scores of padded candidates ``[C, K]`` against contexts ``[C, L]``;
    ``emb`` rows are unit vectors; padded candidates score ``-inf``."""
    c_ok, x_ok = cand >= 0, ctx >= 0
    ce = emb[cand.clamp(min=0)]                                      # [C, K, E]
    xe = emb[ctx.clamp(min=0)] * x_ok[..., None]                     # [C, L, E], padding zeroed
    cos = torch.einsum("cke,cle->ckl", ce, xe)
    scores = cos.sum(dim=2) / x_ok.sum(dim=1, keepdim=True).clamp(min=1)
    # Identical embeddings must tie exactly: give each candidate the score of the first candidate
    # whose embedding equals its own (a matrix product may round equal rows differently).
    same = (ce[:, :, None, :] == ce[:, None, :, :]).all(dim=3) & c_ok[:, None, :] & c_ok[:, :, None]
    first = same.to(torch.int8).argmax(dim=2)                        # first True (itself at worst)
    scores = scores.gather(1, first)
    return scores.masked_fill(~c_ok, float("-inf"))


def fill_in_the_blank(emb: Tensor, questions: pd.DataFrame | PolyvoreData,
                      graph: PinBoardGraph | IdMap | None = None, *,
                      chunk_size: int = 1024) -> FitbResult:
    """Score FITB questions with pin embeddings (see the module docstring for the protocol).

    Args:
        emb: ``[N_pins, E]`` float pin embeddings, row ``i`` = pin index ``i`` of ``graph``; any
            device (scores are computed there, in float64).
        questions: :class:`~boardgraph.datasets.polyvore.PolyvoreData` (its ``fitb`` table and
            ``graph``), or a table with columns ``question_id``, ``answer_id``, ``candidate_ids``
            and ``resolved_context_ids`` (tuples of item ids) and ``status``
            (``"full"``/``"partial"``/``"unresolved"``).
        graph: maps item ids to embedding rows (a ``PinBoardGraph`` or the pin ``IdMap``);
            default: the graph of ``questions`` when it is ``PolyvoreData``.
        chunk_size: questions scored at once (memory about ``chunk_size * 5 * (5 + L) * E``
            values, ``L`` the longest context).

    Returns:
        :class:`FitbResult` over the full and partial questions, in table order.

    Raises:
        FitbError: ``emb`` is not a finite 2-D float tensor with one row per pin, a required
            column is missing, the answer is not among a question's candidates, an item id is
            not in the graph, or ``chunk_size`` is not a positive int.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise FitbError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not isinstance(emb, Tensor) or emb.dim() != 2 or not emb.is_floating_point():
        raise FitbError(f"emb must be a 2-D float tensor [N_pins, E], got "
                        f"{getattr(emb, 'dtype', type(emb).__name__)} of shape "
                        f"{tuple(getattr(emb, 'shape', ()))}")
    table, index = _question_table(questions, graph)
    n_pins = index.num_nodes("pin") if hasattr(index, "num_nodes") else len(index)
    if emb.shape[0] != n_pins:
        raise FitbError(f"emb has {emb.shape[0]} rows but the graph has {n_pins} pins; embed "
                        f"every pin of the graph, row i = pin index i")
    if not bool(torch.isfinite(emb).all()):
        raise FitbError(f"emb holds {int((~torch.isfinite(emb)).sum())} non-finite value(s); "
                        f"check the embedding pass")
    status = table["status"].astype(str)
    scored = table[status.isin(SCORED_STATUSES).to_numpy()]
    full = torch.from_numpy((status[status.isin(SCORED_STATUSES)] == "full").to_numpy(dtype=bool,
                                                                                        copy=True))
    qids = torch.from_numpy(scored["question_id"].to_numpy(dtype=np.int64, copy=True))
    n_unresolved = int(len(table) - len(scored))
    if len(scored) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return FitbResult(qids, torch.zeros(0, dtype=torch.float64), empty, empty, full,
                          n_unresolved)
    cands = [tuple(c) for c in scored["candidate_ids"]]
    answers = scored["answer_id"].tolist()
    cand_rows = _pad(cands, index)
    ctx_rows = _pad([tuple(c) for c in scored["resolved_context_ids"]], index)
    width = cand_rows.shape[1]
    is_true = torch.tensor([[c == a for c in cs] + [False] * (width - len(cs))
                            for cs, a in zip(cands, answers)], dtype=torch.bool).reshape(-1, width)
    no_answer = torch.nonzero(~is_true.any(dim=1)).flatten()
    if no_answer.numel():
        q = int(no_answer[0])
        raise FitbError(f"question {scored['question_id'].iloc[q]}: answer {answers[q]!r} is not "
                        f"among its candidates {cands[q]}; rebuild the table with load_polyvore")
    en = F.normalize(emb.detach().double(), dim=1)
    parts = [_score_chunk(en, cand_rows[s:s + chunk_size].to(en.device),
                          ctx_rows[s:s + chunk_size].to(en.device)).cpu()
             for s in range(0, cand_rows.shape[0], chunk_size)]
    scores = torch.cat(parts)
    tied = scores == scores.max(dim=1, keepdim=True).values
    n_ties = tied.sum(dim=1)
    credit = (tied & is_true).any(dim=1).double() / n_ties.double()
    return FitbResult(question_ids=qids, credit=credit, n_ties=n_ties,
                      n_candidates=(cand_rows >= 0).sum(dim=1), full=full,
                      n_unresolved=n_unresolved)


# ------------------------------------------------------------------------------ train exclusion
def fitb_touched(questions: pd.DataFrame | PolyvoreData) -> tuple[set[str], set[str]]:
    """Outfits and items that any FITB question mentions (answer, candidate or context).

    Item ids are ``f"{outfit_id}_{index}"``; every question is counted, scored or not, so the
    complement of the outfits is what training may use (it equals
    :attr:`PolyvoreData.train_outfits` on the shared data).

    Returns:
        ``(outfit_ids, item_ids)``, both sets of str.
    """
    table = questions if isinstance(questions, pd.DataFrame) else questions.fitb
    items: set[str] = set(table["answer_id"])
    for col in ("candidate_ids", "context_ids"):
        if col in table.columns:
            for ids in table[col]:
                items.update(ids)
    return {i.rsplit("_", 1)[0] for i in items}, items


def exclude_fitb(graph: PinBoardGraph, questions: pd.DataFrame | PolyvoreData) -> PinBoardGraph:
    """``graph`` without the memberships of any outfit a FITB question touches.

    Nodes, ids and features stay (the FITB items become pins without boards), so embeddings of
    the returned graph still have one row per pin of ``graph``. Touched outfits the graph lacks
    are ignored.
    """
    outfits, _ = fitb_touched(questions)
    b = graph.index("board", sorted(outfits), missing="ignore")
    b = b[b >= 0]
    if b.numel() == 0:
        return graph
    _, board = graph.edges(MEMBER)
    eids = torch.nonzero(torch.isin(board, b.to(board.device))).squeeze(1)
    return graph.remove_edges(MEMBER, eids=eids) if eids.numel() else graph


def make_fitb_questions(graph: PinBoardGraph, boards: Tensor | None = None, attribute: str | None = None,
                        n_candidates: int = 5, pool: Tensor | None = None, per_board: int | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """Fill-in-the-blank questions from boards of ``graph``, in the table format of
    :func:`fill_in_the_blank`.

    For each board of ``boards`` with at least two pins, ``per_board`` of its pins (all when None),
    drawn at random, are hidden in turn: the context is the board's other pins, the candidates are
    the hidden pin and ``n_candidates - 1`` negatives drawn without replacement from ``pool``,
    among the pins that share the hidden pin's ``attribute`` value (a categorical pin feature; None:
    any pin; pins without a value form one group) and are not on the board. A question with fewer possible negatives takes those it
    has; one with none is skipped (``make_fitb_questions(...).attrs["skipped"]`` counts them).
    Candidates are shuffled (the scoring never uses their order).

    Args:
        graph: the pins, boards and memberships.
        boards: int64 board indices to build questions from (default: every board).
        attribute: categorical pin feature the negatives share with the hidden pin.
        n_candidates: candidates per question, the hidden pin included (>= 2).
        pool: int64 pin indices negatives are drawn from (default: the pins of ``boards``).
        per_board: hidden pins per board (None: every pin of the board).
        seed: seed of every draw.

    Returns:
        DataFrame with ``question_id``, ``board_id``, ``answer_id``, ``candidate_ids`` and
        ``resolved_context_ids`` (tuples of pin ids), ``n_candidates`` and ``status`` (``"full"``).

    Raises:
        FitbError: ``n_candidates < 2``, ``per_board < 1``, or ``attribute`` is not a categorical
            pin feature.
    """
    if n_candidates < 2:
        raise FitbError(f"n_candidates must be >= 2 (the hidden pin and a negative), got {n_candidates}")
    if per_board is not None and per_board < 1:
        raise FitbError(f"per_board must be >= 1 or None, got {per_board}")
    feats = graph.features("pin")
    if attribute is not None and attribute not in feats.names("categorical"):
        raise FitbError(f"attribute {attribute!r} is not a categorical pin feature; the pins have "
                        f"{feats.names('categorical')}")
    n_boards = graph.num_nodes("board")
    boards = torch.arange(n_boards) if boards is None else torch.as_tensor(boards, dtype=torch.int64).cpu()
    indptr, indices, _ = graph.csr(graph.reverse_of(MEMBER))
    indptr, indices = indptr.cpu(), indices.cpu()
    members = {int(b): indices[indptr[b]:indptr[b + 1]] for b in boards.tolist()}
    if pool is None:
        pool = torch.cat([m for m in members.values()] or [torch.zeros(0, dtype=torch.int64)]).unique()
    pool = torch.as_tensor(pool, dtype=torch.int64).cpu().unique()
    codes = feats.categorical(attribute).cpu() if attribute is not None else torch.zeros(graph.num_nodes("pin"),
                                                                                           dtype=torch.int64)
    by_code = {int(c): pool[codes[pool] == c] for c in codes[pool].unique().tolist()}
    rng = np.random.default_rng(seed)
    pin_ids, board_ids = graph.ids("pin"), graph.ids("board")
    rows, skipped = [], 0
    for b, m in members.items():
        if m.numel() < 2:
            continue
        on_board = m.numpy()
        hidden = on_board
        if per_board is not None and per_board < len(hidden):
            hidden = rng.choice(hidden, size=per_board, replace=False)
        for h in hidden.tolist():
            same = by_code.get(int(codes[h]), torch.zeros(0, dtype=torch.int64)).numpy()
            choices = np.setdiff1d(same, on_board)
            if choices.size == 0:
                skipped += 1
                continue
            neg = rng.choice(choices, size=min(n_candidates - 1, choices.size), replace=False)
            cand = np.concatenate([[h], neg])
            rng.shuffle(cand)
            ctx = [p for p in m.tolist() if p != h]
            rows.append({"question_id": len(rows), "board_id": board_ids[b], "answer_id": pin_ids[h],
                         "candidate_ids": tuple(pin_ids[cand]), "resolved_context_ids": tuple(pin_ids[ctx]),
                         "n_candidates": int(cand.size), "status": "full"})
    out = pd.DataFrame(rows, columns=["question_id", "board_id", "answer_id", "candidate_ids",
                                      "resolved_context_ids", "n_candidates", "status"])
    out.attrs["skipped"] = skipped
    return out
