"""Loader for the Polyvore outfits (Polyvore-T variant) and their fill-in-the-blank questions.

Outfits are boards and their items are pins. The data lives outside the repository (see
``shared/data/polyvore/README.md``); :func:`find_data_dir` locates it. Facts worth knowing:

* 3,659 outfits (2,463 test + 1,196 valid), 15,082 items, five coarse categories (upper,
  bottom, shoe, bag, accessory), at most one item per category per outfit; items never recur
  across outfits. 140 names are empty (loaded as missing).
* 2,758 FITB records expand to 16,768 questions. The outfit files keep at most one item per
  category while FITB outfits have up to 8 items, so a question resolves only partly: see
  :data:`FITB_STATUSES` and :meth:`PolyvoreData.fitb_counts`.
* Train only on :attr:`PolyvoreData.train_outfits`, the outfits no FITB question touches.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from boardgraph.graph import BuildReport, PinBoardGraph, from_collections
from boardgraph.graph.errors import MalformedValueError

from ._paths import DATA_ENV_VAR, find_data_dir

__all__ = ["PolyvoreData", "load_polyvore", "find_data_dir", "FITB_STATUSES", "DATA_ENV_VAR"]

log = logging.getLogger(__name__)

SPLITS = ("test", "valid")
CATEGORIES = ("upper", "bottom", "shoe", "bag", "accessory")
FITB_STATUSES = ("full", "partial", "unresolved")
"""Resolution of a FITB question against the outfit files.

``full``: hidden item, every candidate and every context item are in the outfit files.
``partial``: hidden item and every candidate resolve, and at least one but not every context
item does. ``unresolved``: anything else (the question cannot be scored).
"""

_POLYVORE_FILES = ("outfits_test.json", "outfits_valid.json", "fitb_questions.json")


@dataclass
class PolyvoreData:
    """The Polyvore outfits as tables, the FITB questions and the Pin-Board graph.

    Attributes:
        root: the folder the files were read from.
        memberships: one row per (outfit, item): ``board_id`` (outfit id, str), ``pin_id``
            (``f"{outfit_id}_{index}"``), ``split`` (``"test"``/``"valid"``). File order.
        items: one row per item, same order: ``pin_id``, ``name`` (str; empty names are
            missing), ``category`` (one of upper/bottom/shoe/bag/accessory),
            ``outfit_id``, ``split``.
        outfits: one row per outfit: ``board_id``, ``split``, ``num_items``, ``in_fitb`` (an
            item of the outfit is a FITB answer, context or candidate).
        fitb: one row per FITB question (16,768): ``question_id`` (0..), ``record`` (index in
            the JSON list), ``position`` (which answer is hidden), ``outfit_id``, ``answer_id``,
            ``candidate_ids`` and ``context_ids`` (tuples of str; the answer is listed last among
            the candidates, so never use the position), ``resolved_context_ids`` (the context
            items present in the outfit files), ``n_candidates`` (1..5), ``answer_resolved``,
            ``n_candidates_resolved``, ``n_context``, ``n_context_resolved`` and ``status``
            (see :data:`FITB_STATUSES`).
        train_outfits: outfit ids (file order) that no FITB question touches.
        graph: the Pin-Board graph of all outfits (``None`` when loaded with
            ``build_graph=False``).
        report: the builder's report (``None`` likewise).
    """

    root: Path
    memberships: pd.DataFrame
    items: pd.DataFrame
    outfits: pd.DataFrame
    fitb: pd.DataFrame
    train_outfits: list[str]
    graph: "PinBoardGraph | None" = field(default=None, repr=False)
    report: "BuildReport | None" = field(default=None, repr=False)

    def fitb_counts(self) -> dict[str, int]:
        """Number of FITB questions per resolution status (keys in :data:`FITB_STATUSES`)."""
        counts = self.fitb["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in FITB_STATUSES}

    def train_items(self) -> pd.DataFrame:
        """The rows of :attr:`items` that belong to :attr:`train_outfits`."""
        return self.items[self.items["outfit_id"].isin(set(self.train_outfits))]

    def train_memberships(self) -> pd.DataFrame:
        """The rows of :attr:`memberships` that belong to :attr:`train_outfits`."""
        return self.memberships[self.memberships["board_id"].isin(set(self.train_outfits))]


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _outfit_tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read both outfit files into (items, outfits) tables."""
    item_rows: list[tuple[str, str, str, str, str]] = []
    outfit_rows: list[tuple[str, str, int]] = []
    for split in SPLITS:
        path = root / f"outfits_{split}.json"
        for outfit_id, slots in _read_json(path).items():
            if not isinstance(slots, dict):
                raise MalformedValueError(
                    f"{path.name}: outfit {outfit_id!r} is {type(slots).__name__}, not an object",
                    column="outfit", rows=[outfit_id], fix="restore the file from the source")
            for category, item in slots.items():
                if category not in CATEGORIES or "index" not in item:
                    raise MalformedValueError(
                        f"{path.name}: outfit {outfit_id!r} has entry {category!r}: {item!r}; "
                        f"expected one of {CATEGORIES} with an 'index'",
                        column="category", rows=[outfit_id], fix="restore the file from the source")
                item_rows.append((f"{outfit_id}_{item['index']}", item.get("name") or "",
                                  category, outfit_id, split))
            outfit_rows.append((outfit_id, split, len(slots)))
    items = pd.DataFrame(item_rows, columns=["pin_id", "name", "category", "outfit_id", "split"])
    items["name"] = items["name"].mask(items["name"] == "")
    items["category"] = pd.Categorical(items["category"], categories=list(CATEGORIES))
    outfits = pd.DataFrame(outfit_rows, columns=["board_id", "split", "num_items"])
    dup = items["pin_id"].duplicated()
    if dup.any():
        raise MalformedValueError(f"item ids recur across outfits: {items['pin_id'][dup].tolist()[:5]}",
                                  column="pin_id", rows=list(items.index[dup]),
                                  fix="check that the outfit files are not concatenated twice")
    return items, outfits


def _fitb_table(records: list[dict[str, Any]], known: set[str]) -> pd.DataFrame:
    """Expand the FITB records into one row per question and resolve them against ``known``."""
    rows: list[tuple[Any, ...]] = []
    for r, rec in enumerate(records):
        answers, questions = rec.get("answers"), rec.get("questions")
        if not isinstance(answers, list) or not isinstance(questions, list) \
                or len(answers) != len(questions):
            raise MalformedValueError(
                f"FITB record {r} needs lists 'answers' and 'questions' of equal length, got "
                f"{type(answers).__name__}/{type(questions).__name__}",
                column="questions", rows=[r], fix="restore fitb_questions.json from the source")
        for pos, candidates in enumerate(questions):
            answer = answers[pos]
            if answer not in candidates:
                raise MalformedValueError(
                    f"FITB record {r}, question {pos}: answer {answer!r} is not among the "
                    f"candidates {candidates!r}", column="questions", rows=[r],
                    fix="restore fitb_questions.json from the source")
            context = tuple(answers[:pos] + answers[pos + 1:])
            resolved_ctx = tuple(c for c in context if c in known)
            ans_ok = answer in known
            n_cand_ok = sum(c in known for c in candidates)
            if ans_ok and n_cand_ok == len(candidates) and len(resolved_ctx) == len(context):
                status = "full"
            elif ans_ok and n_cand_ok == len(candidates) and resolved_ctx:
                status = "partial"
            else:
                status = "unresolved"
            rows.append((len(rows), r, pos, answer.rsplit("_", 1)[0], answer, tuple(candidates),
                         context, resolved_ctx, len(candidates), ans_ok, n_cand_ok, len(context),
                         len(resolved_ctx), status))
    fitb = pd.DataFrame(rows, columns=[
        "question_id", "record", "position", "outfit_id", "answer_id", "candidate_ids",
        "context_ids", "resolved_context_ids", "n_candidates", "answer_resolved",
        "n_candidates_resolved", "n_context", "n_context_resolved", "status"])
    fitb["status"] = pd.Categorical(fitb["status"], categories=list(FITB_STATUSES))
    return fitb


def _fitb_outfits(records: list[dict[str, Any]]) -> set[str]:
    """Outfit ids of every item id a FITB record mentions (answers and candidates)."""
    ids: set[str] = set()
    for rec in records:
        ids.update(rec["answers"])
        for candidates in rec["questions"]:
            ids.update(candidates)
    return {i.rsplit("_", 1)[0] for i in ids}


def load_polyvore(root: str | os.PathLike[str] | None = None, *,
                  build_graph: bool = True) -> PolyvoreData:
    """Load the Polyvore outfits, FITB questions and (optionally) the Pin-Board graph.

    Args:
        root: the ``polyvore`` folder; default found by :func:`find_data_dir`.
        build_graph: build :attr:`PolyvoreData.graph` with
            :func:`boardgraph.graph.from_collections` (pins = items in :attr:`items` order,
            boards = outfits; text feature ``name``, categorical feature ``category``).

    Returns:
        A :class:`PolyvoreData`.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        MalformedValueError: a file does not have the documented layout.
    """
    path = find_data_dir("polyvore", root, required=_POLYVORE_FILES)
    items, outfits = _outfit_tables(path)
    records = _read_json(path / "fitb_questions.json")
    fitb = _fitb_table(records, set(items["pin_id"]))
    touched = _fitb_outfits(records)
    outfits["in_fitb"] = outfits["board_id"].isin(touched)
    train_outfits = outfits.loc[~outfits["in_fitb"], "board_id"].tolist()
    memberships = items[["outfit_id", "pin_id", "split"]].rename(columns={"outfit_id": "board_id"})
    data = PolyvoreData(root=path, memberships=memberships, items=items, outfits=outfits,
                        fitb=fitb, train_outfits=train_outfits)
    log.info("polyvore: %d outfits, %d items, FITB %s, %d train outfits", len(outfits),
             len(items), data.fitb_counts(), len(train_outfits))
    if build_graph:
        data.graph, data.report = from_collections(
            memberships, collection="board_id", item="pin_id", items=items,
            boards=outfits[["board_id", "split"]], text=("name",), categorical=("category",),
            on_error="skip")
    return data
