"""Loader for the Steam bundles of Pathak, Gupta and McAuley (SIGIR 2017).

Bundles are boards and games (and their DLC, soundtracks, hardware) are pins. The data lives
outside the repository (``shared/data/steam-bundles/README.md``). What the raw file holds:

* 615 bundles and 3,525 listings (bundle, item) naming 2,798 distinct ``item_id`` strings.
* 10 listings in 7 bundles have an empty ``item_id`` (GTA shark cards, a few DLCs; 8 different
  names share the empty id). They are kept in :attr:`SteamData.memberships` with a missing
  ``pin_id`` and dropped, counted, by the builder; they are not items. Bundles ``1141`` and
  ``19`` list only such items, so their boards have no pins.
* One bundle (``383``, Telltale Collection) lists item ``94620`` twice; the builder drops the
  repeat (``report.counts["duplicate_edge"]``).
* Prices are strings such as ``"$8.99"``; an item's price is its discounted price in the first
  bundle that lists it (5 items are listed at different prices in different bundles, counted in
  :attr:`SteamData.counts`). Some genres are empty (loaded as missing).
* Identical bundles exist: see :attr:`SteamData.twins`; keep twins on the same side of a split
  or scores are inflated. Twins are judged on the item ids the graph keeps, so ``166``,
  ``264`` and ``265`` (GTA V plus a different cash card without an id) are twins, while ``1141``
  and ``19``, identical in the raw file only because all their ids are empty, are not.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from boardgraph.graph import BuildReport, PinBoardGraph, from_collections
from boardgraph.graph.errors import MalformedValueError

from ._paths import find_data_dir

__all__ = ["SteamData", "load_steam_bundles", "parse_price", "parse_prices"]

log = logging.getLogger(__name__)

_PRICE_RE = re.compile(r"^\s*\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*$")
_BUNDLE_KEYS = ("bundle_id", "bundle_name", "bundle_price", "bundle_final_price", "items")
_ITEM_KEYS = ("item_id", "item_name", "genre", "discounted_price")


def parse_price(value: Any) -> float:
    """Parse one price such as ``"$8.99"``, ``"8.99"``, ``"$1,299.00"`` or ``8.99`` to float.

    Returns:
        The price in dollars; ``NaN`` when ``value`` is missing (``None``, ``NaN``, ``""``).

    Raises:
        ValueError: ``value`` is present but not a price (e.g. ``"Free"``, ``"N/A"``).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return float("nan")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if not value.strip():
            return float("nan")
        match = _PRICE_RE.match(value)
        if match:
            return float(match.group(1).replace(",", "") + (match.group(2) or ""))
    raise ValueError(f"not a price: {value!r}; expected a string such as '$8.99'")


def parse_prices(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column of prices with :func:`parse_price`, once per distinct value.

    Args:
        values: ``[N]`` price strings or numbers.

    Returns:
        ``(prices, unparseable)``: float64 ``[N]`` (``NaN`` where missing or unparseable) and a
        bool ``[N]`` mask of the present values that are not prices, so that callers count them
        instead of losing them silently. Both keep ``values.index``.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.full(len(uniques) + 1, np.nan)  # last slot: code -1 (missing)
    bad = np.zeros(len(uniques) + 1, dtype=bool)
    for i, v in enumerate(uniques):
        try:
            table[i] = parse_price(v)
        except ValueError:
            bad[i] = True
    return (pd.Series(table[codes], index=values.index, dtype="float64"),
            pd.Series(bad[codes], index=values.index, dtype=bool))


@dataclass
class SteamData:
    """The Steam bundles as tables and as a Pin-Board graph.

    Attributes:
        root: the folder the file was read from.
        memberships: one row per listing, as in the file (3,525): ``board_id`` (bundle id,
            str), ``pin_id`` (item id, str; missing where the file's id is empty). Duplicate
            and missing ids are left for the builder to drop and count (:attr:`report`); the
            graph's ``("pin", "in", "board")`` edges are the cleaned memberships.
        items: one row per distinct non-empty item id, in first-listing order: ``pin_id``,
            ``name``, ``genre`` (comma-separated Steam genres as one string; missing when
            empty), ``price`` (float64 dollars; ``NaN`` when unparseable).
        bundles: one row per bundle: ``board_id``, ``bundle_name``, ``bundle_price``,
            ``bundle_final_price`` (float64 dollars).
        counts: loader-side counts: ``missing_item_id`` (listings with an empty id),
            ``unparseable_price`` and ``missing_price`` (item and bundle prices together),
            ``conflicting_item_price`` (items listed at different prices in different
            bundles), ``twin_bundles`` (bundles whose item set equals an earlier bundle's).
        twins: groups of bundle ids (file order) whose sets of non-missing item ids are
            equal and non-empty, i.e. bundles that are identical boards in the graph.
        graph: the Pin-Board graph (``None`` when loaded with ``build_graph=False``).
        report: the builder's report (``None`` likewise).
    """

    root: Path
    memberships: pd.DataFrame
    items: pd.DataFrame
    bundles: pd.DataFrame
    counts: dict[str, int]
    twins: list[tuple[str, ...]]
    graph: "PinBoardGraph | None" = field(default=None, repr=False)
    report: "BuildReport | None" = field(default=None, repr=False)


def _check_keys(obj: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        have = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise MalformedValueError(f"bundles.json: {where} needs keys {list(keys)}, has {have}",
                                  column=where, fix="restore bundles.json from the source")


def _twins(memberships: pd.DataFrame) -> list[tuple[str, ...]]:
    """Groups of bundles with the same non-empty set of item ids, in file order."""
    sets: dict[frozenset[str], list[str]] = defaultdict(list)
    valid = memberships.dropna(subset=["pin_id"])
    for board, pins in valid.groupby("board_id", sort=False)["pin_id"]:
        sets[frozenset(pins)].append(str(board))
    return [tuple(group) for group in sets.values() if len(group) > 1]


def load_steam_bundles(root: str | os.PathLike[str] | None = None, *,
                       build_graph: bool = True) -> SteamData:
    """Load the Steam bundles and (optionally) build their Pin-Board graph.

    Args:
        root: the ``steam-bundles`` folder; default found by
            :func:`~boardgraph.datasets._paths.find_data_dir`.
        build_graph: build :attr:`SteamData.graph` with
            :func:`boardgraph.graph.from_collections` (pins in :attr:`SteamData.items` order;
            text ``name``, categorical ``genre``, numeric ``price``; board text
            ``bundle_name``; ``on_error="skip"``, so missing and duplicate memberships are
            dropped and counted in :attr:`SteamData.report` as ``null_pin_id`` and
            ``duplicate_edge``).

    Returns:
        A :class:`SteamData`.

    Raises:
        FileNotFoundError: the folder or ``bundles.json`` is missing.
        MalformedValueError: the file does not have the documented layout.
    """
    path = find_data_dir("steam-bundles", root, required=("bundles.json",))
    with (path / "bundles.json").open(encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, list):
        raise MalformedValueError(f"bundles.json holds a {type(raw).__name__}, not a list",
                                  fix="restore bundles.json from the source")
    bundle_rows, listing_rows = [], []
    for b, bundle in enumerate(raw):
        _check_keys(bundle, _BUNDLE_KEYS, f"bundle {b}")
        board = str(bundle["bundle_id"])
        bundle_rows.append((board, bundle["bundle_name"], bundle["bundle_price"],
                            bundle["bundle_final_price"]))
        for item in bundle["items"]:
            _check_keys(item, _ITEM_KEYS, f"an item of bundle {board}")
            item_id = str(item["item_id"]).strip() if item["item_id"] is not None else ""
            listing_rows.append((board, item_id or None, item["item_name"], item["genre"] or None,
                                 item["discounted_price"]))
    listings = pd.DataFrame(listing_rows,
                            columns=["board_id", "pin_id", "name", "genre", "price_text"])
    listings["price"], bad_item_price = parse_prices(listings["price_text"])

    bundles = pd.DataFrame(bundle_rows, columns=["board_id", "bundle_name", "bundle_price",
                                                 "bundle_final_price"])
    counts = {"missing_item_id": int(listings["pin_id"].isna().sum()), "unparseable_price": 0,
              "missing_price": 0}
    for col in ("bundle_price", "bundle_final_price"):
        bundles[col], bad = parse_prices(bundles[col])
        counts["unparseable_price"] += int(bad.sum())
        counts["missing_price"] += int(bundles[col].isna().sum() - bad.sum())

    known = listings.dropna(subset=["pin_id"])
    items = known.drop_duplicates("pin_id")[["pin_id", "name", "genre", "price"]]
    items = items.reset_index(drop=True)
    first_bad = bad_item_price[known.index].groupby(known["pin_id"].to_numpy()).first()
    counts["unparseable_price"] += int(first_bad.sum())
    counts["missing_price"] += int(items["price"].isna().sum() - first_bad.sum())
    counts["conflicting_item_price"] = int(
        (known.groupby("pin_id")["price"].nunique(dropna=False) > 1).sum())
    memberships = listings[["board_id", "pin_id"]].copy()
    twins = _twins(memberships)
    counts["twin_bundles"] = sum(len(g) - 1 for g in twins)
    if counts["unparseable_price"]:
        log.warning("steam: %d prices could not be parsed; they are NaN",
                    counts["unparseable_price"])

    data = SteamData(root=path, memberships=memberships, items=items, bundles=bundles,
                     counts=counts, twins=twins)
    log.info("steam: %d bundles, %d items, %d listings, counts %s", len(bundles), len(items),
             len(memberships), counts)
    if build_graph:
        data.graph, data.report = from_collections(
            memberships, collection="board_id", item="pin_id", items=items, boards=bundles,
            text=("name",), categorical=("genre",), numeric=("price",),
            board_text=("bundle_name",), on_error="skip")
    return data
