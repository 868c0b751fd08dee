"""Feature columns of a node table: which columns are which kind (:class:`FeatureSpec`) and how each
kind is parsed (:func:`parse_feature_columns`), for the builders and for
:meth:`PinBoardGraph.add_pins <boardgraph.graph.store.PinBoardGraph.add_pins>`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .build_report import VALUES, BuildReport
from .checks import F32_MAX, Checker, nonfinite_fix, parse_numeric
from .errors import MalformedValueError, show_value
from .features import NodeFeatures
from .image_checks import DEFAULT_MAX_IMAGE_PIXELS, ImageRules, parse_image_column

__all__ = ["FeatureSpec", "parse_feature_columns", "fill_features"]


@dataclass
class FeatureSpec:
    """The feature columns of one node type, by kind (``labels`` are ground truth for evaluation only)."""

    text: Sequence[str] = ()
    image: str | None = None
    categorical: Sequence[str] = ()
    numeric: Sequence[str] = ()
    labels: Sequence[str] = ()

    def kinds(self) -> dict[str, str]:
        """Column -> kind (``"text"``, ``"categorical"``, ``"numeric"``, ``"label"``, ``"image"``)."""
        out = {c: "text" for c in self.text}
        out.update({c: "categorical" for c in self.categorical})
        out.update({c: "numeric" for c in self.numeric})
        out.update({c: "label" for c in self.labels})
        if self.image:
            out[self.image] = "image"
        return out


def parse_feature_columns(table: pd.DataFrame, kinds: dict[str, str], checker: Checker | None = None,
                          image_root: str | None = None, *, max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                          allow_outside_root: bool = False) -> pd.DataFrame:
    """Parse the feature columns of ``table`` (``[n]`` rows) by kind; returns them ``[n]`` rows, RangeIndex.

    Numeric columns become float64 (NaN where missing); a value that is not a number, or not a
    finite float32 number, raises :class:`MalformedValueError`, or with a skip-mode checker is set
    missing and counted (``malformed_<col>`` / ``nonfinite_<col>``). Image columns are checked as
    described in :mod:`boardgraph.graph.image_checks` (``unreadable_<col>``, ``oversized_<col>``,
    ``outside_root_<col>``) and relative paths are joined to ``image_root``. Without ``image_root``
    paths are used as written (no confinement).
    """
    checker = checker or Checker("raise", BuildReport())
    rules = ImageRules(image_root, max_image_pixels, allow_outside_root)
    out = {}
    for c, kind in kinds.items():
        if c not in table.columns:
            continue
        col = table[c]
        if kind == "numeric":
            val, bad, nonfinite = parse_numeric(col)
            nonfinite |= np.abs(np.nan_to_num(val)) > F32_MAX
            if nonfinite.any():
                checker.check(table, nonfinite, MalformedValueError, f"column {c!r}: value "
                              f"{show_value(col[nonfinite].iloc[0])} is not a finite number", c, nonfinite_fix(c),
                              reason=f"nonfinite_{c}", scope=VALUES)
            if bad.any():
                checker.check(table, bad, MalformedValueError, f"column {c!r}: value "
                              f"{show_value(col[bad].iloc[0])} is not a number", c, f"write plain numbers in {c!r} "
                              f"(currency signs and thousands commas are accepted)", reason=f"malformed_{c}",
                              scope=VALUES)
            val[nonfinite] = np.nan
            out[c] = val
        elif kind == "image":
            out[c] = parse_image_column(table, c, checker, rules)
        else:
            out[c] = col.to_numpy() if kind != "categorical" else col.astype("category").values
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


def fill_features(f: NodeFeatures, feats: pd.DataFrame, spec: FeatureSpec) -> None:
    """Add the parsed feature columns ``feats`` (one row per node, as :func:`parse_feature_columns`
    returns them) to ``f``, each as the kind ``spec`` gives it."""
    kinds = spec.kinds()
    for c in feats.columns:
        f.add_column(c, feats[c], kinds[c])
