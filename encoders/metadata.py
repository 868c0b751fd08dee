"""Metadata tower: categorical and numeric fields -> one token per field.

:class:`MetadataSchema` is fitted on the training pins: a vocabulary per categorical field and
mean/std per numeric field. It encodes raw values to ids: ``0`` = missing, ``1..V`` = the
vocabulary, and values never seen while fitting are hashed (CRC-32, stable across runs and
processes) into ``num_buckets`` extra ids ``V+1..V+num_buckets``, so new brands share a few
learned embeddings instead of crashing or all collapsing into one "unknown".

:class:`MetadataEncoder` turns ids into embeddings (one table per field) and numeric values into
``z * w_f + b_f`` with ``z`` the standardised value clipped to ``[-clip, clip]``; a missing value
uses a learned per-field "missing" embedding instead, so missingness is visible to the model.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .errors import EncoderConfigError
from .registry import EncoderConfig, TowerOutput, register_encoder

__all__ = ["MetadataSchema", "MetadataConfig", "MetadataEncoder"]


def _is_missing(v: Any) -> bool:
    return v is None or (not isinstance(v, (str, bytes)) and bool(pd.isna(v)))


@dataclass
class MetadataSchema:
    """Vocabularies and numeric statistics of the metadata fields (fit once, save with the model).

    Attributes:
        categorical: field -> vocabulary (values as strings, id ``i + 1`` for entry ``i``).
        numeric: field -> ``(mean, std)`` of the fitted values (std 1.0 when constant or absent).
        num_buckets: hash buckets for unseen categorical values.
    """

    categorical: dict[str, list[str]] = field(default_factory=dict)
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    num_buckets: int = 16

    @classmethod
    def fit(cls, features: Any, idx: Tensor | None = None, categorical: Sequence[str] | None = None,
            numeric: Sequence[str] | None = None, num_buckets: int = 16, min_count: int = 1) -> "MetadataSchema":
        """Fit on the pins ``idx`` (all when None) of a feature store (``graph.features("pin")``).

        Args:
            categorical, numeric: field names; default every field of that kind.
            min_count: values seen fewer times are left out of the vocabulary (and hashed).

        Raises:
            EncoderConfigError: a name is not a categorical/numeric feature (labels are refused).
        """
        cats = list(features.names("categorical")) if categorical is None else list(categorical)
        nums = list(features.names("numeric")) if numeric is None else list(numeric)
        for name, kind in [(n, "categorical") for n in cats] + [(n, "numeric") for n in nums]:
            if name not in features.names(kind):
                raise EncoderConfigError(f"{name!r} is not a {kind} feature of this store "
                                         f"(have {features.names(kind)})",
                                         fix="pass fields of that kind; labels are never fed to encoders")
        schema = cls(num_buckets=num_buckets)
        for name in cats:
            codes = features.categorical(name, idx).numpy()
            counts = np.bincount(codes[codes >= 0], minlength=len(features.categories(name)))
            schema.categorical[name] = [str(v) for v, c in zip(features.categories(name), counts) if c >= min_count]
        if nums:
            vals = features.numeric(nums, idx).numpy().astype(np.float64)
            for j, name in enumerate(nums):
                col = vals[:, j][~np.isnan(vals[:, j])]
                mean = float(col.mean()) if col.size else 0.0
                std = float(col.std()) if col.size > 1 else 1.0
                schema.numeric[name] = (mean, std if std > 1e-12 else 1.0)
        return schema

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding rows per categorical field: ``1 + len(vocab) + num_buckets``."""
        return tuple(1 + len(v) + self.num_buckets for v in self.categorical.values())

    def encode_values(self, name: str, values: Sequence[Any]) -> Tensor:
        """Raw values of categorical field ``name`` -> int64 ``[len(values)]`` ids (see module docstring)."""
        vocab = self._lookup(name)
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            out[i] = 0 if _is_missing(v) else vocab.get(str(v), -1)
            if out[i] < 0:
                out[i] = self._bucket(name, str(v))
        return torch.from_numpy(out)

    def encode(self, features: Any, idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encode pins ``idx`` of a feature store.

        Returns:
            ``categorical`` int64 ``[B, C]`` ids, ``numeric`` float32 ``[B, F]`` raw values (0.0 where
            missing), ``numeric_missing`` bool ``[B, F]``; fields in schema order.
        """
        n = features.num_nodes if idx is None else len(idx)
        cols = []
        for name in self.categorical:
            table = self.encode_values(name, features.categories(name))  # store code -> schema id
            table = torch.cat([table, torch.zeros(1, dtype=torch.int64)])  # code -1 (missing) -> 0
            cols.append(table[features.categorical(name, idx)])
        cat = torch.stack(cols, 1) if cols else torch.zeros(n, 0, dtype=torch.int64)
        if self.numeric:
            num = features.numeric(list(self.numeric), idx).float()
        else:
            num = torch.zeros(n, 0)
        missing = torch.isnan(num)
        return cat, num.masked_fill(missing, 0.0), missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :meth:`from_dict`)."""
        return {"categorical": {k: list(v) for k, v in self.categorical.items()},
                "numeric": {k: list(v) for k, v in self.numeric.items()}, "num_buckets": self.num_buckets}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MetadataSchema":
        return cls({k: list(v) for k, v in d["categorical"].items()},
                   {k: (float(v[0]), float(v[1])) for k, v in d["numeric"].items()}, int(d["num_buckets"]))

    def _lookup(self, name: str) -> dict[str, int]:
        if name not in self.categorical:
            raise EncoderConfigError(f"{name!r} is not a categorical field of the schema "
                                     f"(have {list(self.categorical)})", fix="refit the schema with that field")
        return {v: i + 1 for i, v in enumerate(self.categorical[name])}

    def _bucket(self, name: str, value: str) -> int:
        if self.num_buckets <= 0:
            return 0  # no buckets: unseen values are treated as missing
        h = zlib.crc32(f"{name}\x1f{value}".encode("utf-8"))
        return 1 + len(self.categorical[name]) + h % self.num_buckets


@dataclass
class MetadataConfig(EncoderConfig):
    """Config of :class:`MetadataEncoder` (build it with :meth:`from_schema`).

    Attributes:
        cardinalities: embedding rows per categorical field (``MetadataSchema.cardinalities``).
        numeric_mean, numeric_std: standardisation of each numeric field.
        dim: token width.
        clip: standardised values are clipped to ``[-clip, clip]``.
    """

    name: str = "metadata"
    cardinalities: tuple[int, ...] = ()
    numeric_mean: tuple[float, ...] = ()
    numeric_std: tuple[float, ...] = ()
    dim: int = 32
    clip: float = 5.0

    @classmethod
    def from_schema(cls, schema: MetadataSchema, dim: int = 32, clip: float = 5.0) -> "MetadataConfig":
        return cls(cardinalities=schema.cardinalities,
                   numeric_mean=tuple(m for m, _ in schema.numeric.values()),
                   numeric_std=tuple(s for _, s in schema.numeric.values()), dim=dim, clip=clip)


@register_encoder("metadata", modality="metadata", default_config=MetadataConfig())
class MetadataEncoder(nn.Module):
    """Field tokens from categorical ids and numeric values.

    Args:
        config: :class:`MetadataConfig` (at least one field).

    Shapes: ``categorical`` int64 ``[B, C]``, ``numeric`` float ``[B, F]``, ``numeric_missing`` bool
    ``[B, F]`` -> :class:`TowerOutput` with tokens ``[B, C + F, dim]`` (categorical first), mask all
    True (missing values have their own embedding), pooled = mean of the tokens ``[B, dim]``.

    Raises:
        EncoderConfigError: no fields, or mean/std lengths differ.
    """

    modality = "metadata"

    def __init__(self, config: MetadataConfig) -> None:
        super().__init__()
        n_num = len(config.numeric_mean)
        if not config.cardinalities and not n_num:
            raise EncoderConfigError("the metadata tower has no fields",
                                     fix="build its config with MetadataConfig.from_schema(MetadataSchema.fit(...))")
        if len(config.numeric_std) != n_num:
            raise EncoderConfigError(f"numeric_mean has {n_num} entries but numeric_std {len(config.numeric_std)}",
                                     fix="give one mean and one std per numeric field")
        self.config = config
        self.token_dim = self.pooled_dim = int(config.dim)
        self.num_categorical, self.num_numeric = len(config.cardinalities), n_num
        offsets = torch.tensor([0, *np.cumsum(config.cardinalities)[:-1].tolist()] if config.cardinalities else [],
                               dtype=torch.int64)
        self.register_buffer("offsets", offsets, persistent=False)
        # One table for all fields (rows offset per field): one gather instead of C.
        self.table = nn.Embedding(max(1, int(sum(config.cardinalities))), config.dim)
        self.register_buffer("mean", torch.tensor(config.numeric_mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(config.numeric_std, dtype=torch.float32))
        self.num_weight = nn.Parameter(torch.empty(n_num, config.dim))
        self.num_bias = nn.Parameter(torch.empty(n_num, config.dim))
        self.num_missing = nn.Parameter(torch.empty(n_num, config.dim))
        self.norm = nn.LayerNorm(config.dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.table.weight, std=0.02)
        for p in (self.num_weight, self.num_bias, self.num_missing):
            nn.init.normal_(p, std=0.02)
        self.norm.reset_parameters()

    def forward(self, categorical: Tensor, numeric: Tensor, numeric_missing: Tensor) -> TowerOutput:
        parts = []
        if self.num_categorical:
            parts.append(self.table(categorical + self.offsets))
        if self.num_numeric:
            z = ((numeric - self.mean) / self.std).clamp(-self.config.clip, self.config.clip)
            tok = z.unsqueeze(-1) * self.num_weight + self.num_bias
            parts.append(torch.where(numeric_missing.unsqueeze(-1), self.num_missing.expand_as(tok), tok))
        tokens = self.norm(torch.cat(parts, 1))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TowerOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))

    def extra_repr(self) -> str:
        return f"categorical={self.num_categorical}, numeric={self.num_numeric}, dim={self.token_dim}"
