"""The pin encoder: towers -> projections -> hybrid fusion -> L2-normalised Matryoshka embedding.

::

    image/text/metadata towers ──tokens──> token_proj ──> early fusion (transformer, [CLS]) ─┐
                               └─pooled──> pooled_proj ─> late fusion (gated mean) ─────────┴> head -> L2
                                                     └──> align_head -> per-modality embeddings (L2)

The per-modality embeddings live in the same ``embed_dim`` space as the pin embedding, for
image-text (and pin-modality) alignment objectives. Training with frozen towers uses
:meth:`PinEncoder.fuse` on cached tower outputs (:class:`~boardgraph.encoders.FeatureCache`);
:meth:`PinEncoder.forward` is ``fuse(encode_towers(x))``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import EncoderConfigError
from .fusion import FusionConfig, HybridFusion
from .id_table import MAX_HASHES, IdTable
from .inputs import PinInputBuilder, PinInputs
from .matryoshka import truncate_embedding
from .metadata import MetadataSchema
from .registry import MODALITIES, EncoderConfig, TowerOutput, build_encoder, check_tower

__all__ = ["PinEncoderConfig", "PinEncoder", "PinEmbedding", "fuse_cached"]


@dataclass
class PinEncoderConfig:
    """Config of :class:`PinEncoder`.

    Attributes:
        fusion: the fusion transformer (its ``dim`` is the width of every projection).
        embed_dim: width of the final embedding; must equal ``max(matryoshka_dims)``.
        matryoshka_dims: nested prefixes that stay useful on their own (ascending).
        num_ids: rows of a learned per-pin ID embedding added to the content embedding of the pins
            marked warm (:meth:`PinEncoder.set_warm_ids`), 0 for none: content + ID.
        id_dropout: share of the warm pins of a training batch encoded without their ID (so the
            content path alone, which serves cold pins, is trained too; DropoutNet-style).
        id_buckets, id_hashes: a hashed ID table of ``id_buckets`` rows, each pin the sum of
            ``id_hashes`` of them (:class:`~boardgraph.encoders.IdTable`), for catalogues whose full
            table would not fit; 0: one row per pin.
    """

    fusion: FusionConfig = field(default_factory=FusionConfig)
    embed_dim: int = 256
    matryoshka_dims: tuple[int, ...] = (64, 128, 256)
    num_ids: int = 0
    id_dropout: float = 0.0
    id_buckets: int = 0
    id_hashes: int = 2

    def __post_init__(self) -> None:
        dims = tuple(self.matryoshka_dims)
        if not dims or list(dims) != sorted(set(dims)) or dims[-1] != self.embed_dim or dims[0] < 1:
            raise EncoderConfigError(f"matryoshka_dims {dims} must be ascending, positive and end at "
                                     f"embed_dim={self.embed_dim}", fix="e.g. embed_dim=256, matryoshka_dims=(64, 128, 256)")
        if self.num_ids < 0 or not 0.0 <= self.id_dropout < 1.0:
            raise EncoderConfigError(f"num_ids must be >= 0 and id_dropout in [0, 1), got {self.num_ids}, "
                                     f"{self.id_dropout}", fix="e.g. num_ids=<pins of the graph>, id_dropout=0.5")
        if self.id_buckets < 0 or not 1 <= self.id_hashes <= MAX_HASHES:
            raise EncoderConfigError(f"id_buckets must be >= 0 and id_hashes in [1, {MAX_HASHES}], got "
                                     f"{self.id_buckets}, {self.id_hashes}", fix="e.g. id_buckets=num_ids // 4, id_hashes=2")


@dataclass
class PinEmbedding:
    """Output of :class:`PinEncoder`.

    Attributes:
        embedding: float ``[B, E]`` L2-normalised pin embeddings.
        modality: ``{m: [B, E]}`` L2-normalised per-modality embeddings (rows of absent modalities
            are zeros) for alignment objectives; only the encoder's modalities are keys.
        present: bool ``[B, 3]`` modalities used per pin (input ``present`` and the encoder's towers).
        early, late: ``[B, D]`` the token-level and embedding-level fused vectors.
        weights: ``[B, 3]`` late-fusion weights per modality.
        content: ``[B, E]`` the head's output before any ID embedding is added and before
            normalisation (the content part of ``embedding``), or None.
    """

    embedding: Tensor
    modality: dict[str, Tensor]
    present: Tensor
    early: Tensor
    late: Tensor
    weights: Tensor
    content: Tensor | None = None

    def truncate(self, dim: int) -> Tensor:
        """The first ``dim`` dimensions of the embedding, renormalised -> ``[B, dim]``."""
        return truncate_embedding(self.embedding, dim)


class PinEncoder(nn.Module):
    """Multimodal pin encoder (see the module docstring).

    Args:
        image, text, metadata: towers following the protocol of :mod:`.registry` (None: modality unused).
        config: :class:`PinEncoderConfig`.

    Raises:
        EncoderConfigError: no tower at all. EncoderProtocolError: a tower breaks the protocol.
    """

    def __init__(self, image: nn.Module | None = None, text: nn.Module | None = None,
                 metadata: nn.Module | None = None, config: PinEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PinEncoderConfig()
        given = {"image": image, "text": text, "metadata": metadata}
        self.towers = nn.ModuleDict()
        for m, tower in given.items():
            if tower is not None:
                check_tower(tower, m)
                self.towers[m] = tower
        if not self.towers:
            raise EncoderConfigError("a PinEncoder needs at least one tower", fix="pass image=, text= or metadata=")
        self.modalities = tuple(m for m in MODALITIES if m in self.towers)
        self.register_buffer("has_tower", torch.tensor([m in self.towers for m in MODALITIES]), persistent=False)
        d, e = config.fusion.dim, config.embed_dim
        self.token_proj = nn.ModuleDict({m: nn.Linear(t.token_dim, d) for m, t in self.towers.items()})
        self.pooled_proj = nn.ModuleDict({m: nn.Linear(t.pooled_dim, d) for m, t in self.towers.items()})
        self.fusion = HybridFusion(config.fusion, self.modalities)
        self.head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, e))
        self.align_head = nn.Linear(d, e)
        self.towers_frozen = False
        self.ids = IdTable(config.num_ids, e, config.id_buckets, config.id_hashes) if config.num_ids else None
        if self.ids is not None:   # (no state-dict key without IDs: earlier checkpoints load as they were)
            self.register_buffer("id_warm", torch.zeros(config.num_ids, dtype=torch.bool))

    @classmethod
    def from_configs(cls, image: EncoderConfig | Mapping[str, Any] | str | None = None,
                     text: EncoderConfig | Mapping[str, Any] | str | None = None,
                     metadata: EncoderConfig | Mapping[str, Any] | str | None = None,
                     config: PinEncoderConfig | None = None) -> "PinEncoder":
        """Build the towers with :func:`build_encoder` from registry names/configs."""
        return cls(*(build_encoder(c) if c is not None else None for c in (image, text, metadata)), config=config)

    # -- towers -----------------------------------------------------------------------------
    def encode_towers(self, x: PinInputs) -> dict[str, TowerOutput]:
        """Run every tower on the whole batch (absent modalities are masked later, not skipped).

        Raises:
            EncoderConfigError: the inputs lack the tensors of a tower's modality.
        """
        out: dict[str, TowerOutput] = {}
        for m, tower in self.towers.items():
            if m == "image":
                self._need(x.images, "images")
                out[m] = tower(x.images)
            elif m == "text":
                self._need(x.input_ids, "input_ids")
                self._need(x.attention_mask, "attention_mask")
                out[m] = tower(x.input_ids, x.attention_mask)
            else:
                for name in ("categorical", "numeric", "numeric_missing"):
                    self._need(getattr(x, name), name)
                out[m] = tower(x.categorical, x.numeric, x.numeric_missing)
        return out

    @staticmethod
    def _need(t: Tensor | None, name: str) -> None:
        if t is None:
            raise EncoderConfigError(f"PinInputs.{name} is None but the encoder has a tower that needs it",
                                     fix="build inputs with encoder.input_builder(...)")

    # -- fusion -----------------------------------------------------------------------------
    def fuse(self, outputs: Mapping[str, TowerOutput], present: Tensor, index: Tensor | None = None) -> PinEmbedding:
        """Projections + hybrid fusion + head on tower outputs (live or cached), plus the pins' ID
        embeddings when the encoder has them (:meth:`id_term`).

        Args:
            outputs: ``{m: TowerOutput}`` for every modality of the encoder.
            present: bool ``[B, 3]`` modality presence per pin.
            index: int64 ``[B]`` the pins' node indices (None: new pins, content only).
        """
        present = present & self.has_tower
        tokens = {m: self.token_proj[m](outputs[m].tokens) for m in self.modalities}
        masks = {m: outputs[m].mask for m in self.modalities}
        pooled = {m: self.pooled_proj[m](outputs[m].pooled) for m in self.modalities}
        early, late, weights = self.fusion(tokens, masks, pooled, present)
        content = z = self.head(torch.cat([early, late], -1))
        if self.ids is not None and index is not None:
            z = z + self.id_term(index.to(z.device)).to(z.dtype)
        emb = F.normalize(z, dim=-1)
        per_mod = {}
        for m in self.modalities:
            j = MODALITIES.index(m)
            v = F.normalize(self.align_head(pooled[m]), dim=-1)
            per_mod[m] = v * present[:, j:j + 1].to(v.dtype)
        return PinEmbedding(embedding=emb, modality=per_mod, present=present, early=early, late=late, weights=weights,
                            content=content)

    def forward(self, x: PinInputs) -> PinEmbedding:
        return self.fuse(self.encode_towers(x), x.present, x.index)

    # -- content + ID -----------------------------------------------------------------------
    def id_term(self, index: Tensor) -> Tensor:
        """float ``[B, E]``: the ID embedding of each pin of ``index [B]`` that is warm (0 for cold
        pins, indices outside the table and, in training mode, an ``id_dropout`` share of the pins)."""
        n = self.config.num_ids
        inside = (index >= 0) & (index < n)
        row = index.clamp(0, max(n - 1, 0))
        use = inside & self.id_warm[row]
        if self.training and self.config.id_dropout > 0:
            use = use & (torch.rand(index.shape, device=index.device) >= self.config.id_dropout)
        return self.ids(row) * use[:, None].to(self.ids.weight.dtype)

    def set_warm_ids(self, warm: Tensor) -> "PinEncoder":
        """Mark which pins carry their ID embedding (bool ``[num_ids]``: those with training
        memberships); the others, and every new pin, are embedded from their content alone."""
        if self.ids is None:
            raise EncoderConfigError("this encoder has no ID embedding", fix="build it with num_ids > 0")
        if warm.shape != self.id_warm.shape:
            raise EncoderConfigError(f"warm must be bool [{self.config.num_ids}], got {tuple(warm.shape)}",
                                     fix="pass one flag per pin of the graph the encoder was built for")
        self.id_warm.copy_(warm.to(self.id_warm.device, torch.bool))
        return self

    # -- training helpers -------------------------------------------------------------------
    def freeze_towers(self, freeze: bool = True) -> "PinEncoder":
        """Freeze (or unfreeze) the towers: no gradients, and kept in eval mode by ``train()``."""
        self.towers_frozen = freeze
        for p in self.towers.parameters():
            p.requires_grad_(not freeze)
        self.towers.train(self.training and not freeze)
        return self

    def train(self, mode: bool = True) -> "PinEncoder":
        super().train(mode)
        if self.towers_frozen:
            self.towers.eval()  # frozen towers must match their cached outputs (no dropout)
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters with ``requires_grad`` (fusion and projections only, when towers are frozen)."""
        return (p for p in self.parameters() if p.requires_grad)

    def input_builder(self, schema: MetadataSchema | None = None, text_fields: Sequence[str] = ("title", "description"),
                      image_field: str | None = "image", image_size: int | None = None,
                      max_length: int = 32) -> PinInputBuilder:
        """A :class:`PinInputBuilder` matching this encoder's towers (unused modalities are not read).

        Raises:
            EncoderConfigError: the encoder has a metadata tower but no ``schema`` is given.
        """
        if "metadata" in self.towers and schema is None:
            raise EncoderConfigError("the encoder has a metadata tower but no schema was given",
                                     fix="pass the MetadataSchema its metadata tower was built from")
        text = self.towers["text"] if "text" in self.towers else None
        return PinInputBuilder(tokenize=text.tokenize if text is not None else None,
                               schema=schema if "metadata" in self.towers else None,
                               text_fields=tuple(text_fields), image_field=image_field if "image" in self.towers else None,
                               image_size=image_size, max_length=max_length)

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, embed_dim={self.config.embed_dim}"


def fuse_cached(encoder: nn.Module, outputs: Mapping[str, TowerOutput], present: Tensor, index: Tensor) -> PinEmbedding:
    """``encoder.fuse`` of cached tower outputs of pins ``index [B]``: the index goes along only to an
    encoder with ID embeddings, so a custom encoder keeps its ``fuse(outputs, present)``."""
    if getattr(encoder, "ids", None) is None:
        return encoder.fuse(outputs, present)
    return encoder.fuse(outputs, present, index)
