"""`PinCLIPModel`: the pin encoder plus what training needs around it (mate attention, board
embeddings, loss modules), and the per-batch loss computation of each model kind.

Kinds (``ObjectiveConfig.kind``), each registered in :data:`boardgraph.models.MODEL_KINDS` (family
``trained``) with its default loss weights and a class holding its loss assembly:

* ``neighbor`` (PinCLIP): image-text alignment + pin-modality alignment + neighbor alignment
  (the pin's content embedding vs the cross-attention fusion of its board-mates, and vs a board
  it is on), plus the ``pairs`` term: InfoNCE against each of the K sampled mates on its own.
  Its graph terms are symmetric by default (``ObjectiveConfig.symmetric``): each also asks the
  board-mate side to pick its pin among the batch's pins, the direction of a board-completion
  query. Measured on Steam bundles (fine-tuned MiniLM, 5 seeds), this recipe beats pairwise
  co-board training by +0.015 Recall@10 [+0.004, +0.028]; without ``pairs`` and symmetry it
  trailed it (README, Results).
* ``content``: image-text + pin-modality alignment only: no graph signal.
* ``coboard``: content terms + InfoNCE of a pin against one board-mate's own embedding (no
  cross-attention): the ablation isolating what the fusion adds.
* ``neighbor_id``: ``neighbor`` on content + a learned ID embedding per warm pin.
* ``neighbor_cf``: ``neighbor_id``, then a collaborative refinement of the warm pins' IDs.

The ``matryoshka`` term repeats the kind's main pin-level term (``mates``, ``coboard``, or
``pin_modality`` for content-only) on every shorter prefix of the embedding
(``PinEncoderConfig.matryoshka_dims``), so truncated embeddings stay useful.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from boardgraph.encoders import BoardMateAttention, PinEncoder, fuse_cached, gather_mates, truncate_embedding
from boardgraph.encoders.registry import MODALITIES, TowerOutput
from boardgraph.models import MODEL_KINDS, register_model

from .contrastive import ClipLoss, SigLipLoss
from .neighbor import CoBoardContrastiveLoss, NeighborAlignmentLoss

__all__ = ["PinCLIPModel", "StepInputs", "default_weights", "trained_kinds", "ContentKind", "CoBoardKind", "NeighborKind",
           "NeighborIdKind", "NeighborCfKind"]


@dataclass
class StepInputs:
    """What one training step needs besides the encoder's inputs (all on the model's device).

    Attributes:
        seed_local: int64 ``[B]`` rows of the seeds among the encoded pins.
        mates_local: int64 ``[B, K]`` rows of the board-mates (``-1`` padding).
        mate_boards: int64 ``[B, K]`` board of each mate (``-1`` padding).
        pin_boards: int64 ``[B, L]`` every board of each seed (``-1`` padding), for false negatives.
        negatives_local: int64 ``[B, M]`` rows of sampled negatives, or None.
        negatives_logq: float ``[B, M]`` their log sampling probabilities, or None.
        from_bank: ``mates_local`` / ``negatives_local`` are global pin indices into the model's
            embedding bank instead of rows of the batch's embeddings.
    """

    seed_local: Tensor
    mates_local: Tensor
    mate_boards: Tensor
    pin_boards: Tensor
    negatives_local: Tensor | None = None
    negatives_logq: Tensor | None = None
    from_bank: bool = False


class ContentKind:
    """``content``: image-text + pin-modality alignment only, no graph signal."""

    #: the kind's terms read board-mates (so an embedding bank can serve them)
    reads_mates = False
    #: its graph terms average both InfoNCE directions unless the config says otherwise
    symmetric_default = False

    @staticmethod
    def add_modules(model: "PinCLIPModel", dim: int, *, mate_heads: int, gather: bool, symmetric: bool,
                    project_values: bool) -> None:
        """Nothing beyond the content terms."""

    @staticmethod
    def graph_terms(model: "PinCLIPModel", seeds: Tensor, table: Tensor, step: StepInputs,
                    weights: dict[str, float]) -> tuple[dict[str, Tensor], Tensor | None, Tensor | None]:
        """No graph term: ``({}, None, None)``."""
        return {}, None, None

    @staticmethod
    def prefix_terms(model: "PinCLIPModel", t, pe, seeds: Tensor, present: Tensor, target: Tensor | None,
                     mask: Tensor | None, step: StepInputs) -> list[Tensor]:
        """Pin-modality alignment of the prefix ``t(.)`` of the embeddings."""
        return [model.pin_modality(t(seeds), t(pe.modality[m][step.seed_local]), present[:, MODALITIES.index(m)])
                for m in pe.modality]


class CoBoardKind:
    """``coboard``: the content terms + InfoNCE of a pin against one board-mate's own embedding
    (no cross-attention), the ablation isolating what the fusion adds."""

    reads_mates = True
    symmetric_default = False

    @staticmethod
    def add_modules(model: "PinCLIPModel", dim: int, *, mate_heads: int, gather: bool, symmetric: bool,
                    project_values: bool) -> None:
        """``model.coboard``: the :class:`~boardgraph.objectives.CoBoardContrastiveLoss`."""
        model.coboard = CoBoardContrastiveLoss(gather=gather, symmetric=symmetric)

    @staticmethod
    def graph_terms(model: "PinCLIPModel", seeds: Tensor, table: Tensor, step: StepInputs,
                    weights: dict[str, float]) -> tuple[dict[str, Tensor], Tensor | None, Tensor | None]:
        """``coboard`` against the first sampled mate; the target ``[B, E]`` and its mask ``[B, 1]``."""
        mates, mask = gather_mates(table, step.mates_local[:, :1])
        target = mates[:, 0]
        return {"coboard": model.coboard(seeds, target, step.pin_boards, has_mate=mask[:, 0])}, target, mask

    @staticmethod
    def prefix_terms(model: "PinCLIPModel", t, pe, seeds: Tensor, present: Tensor, target: Tensor | None,
                     mask: Tensor | None, step: StepInputs) -> list[Tensor]:
        """The ``coboard`` term on the prefix ``t(.)``."""
        return [model.coboard(t(seeds), t(target), step.pin_boards, has_mate=mask[:, 0])]


class NeighborKind:
    """``neighbor`` (PinCLIP): the content terms + neighbor alignment against the cross-attention
    fusion of the board-mates, each mate on its own (``pairs``), and the board (``board``)."""

    reads_mates = True
    symmetric_default = True

    @staticmethod
    def add_modules(model: "PinCLIPModel", dim: int, *, mate_heads: int, gather: bool, symmetric: bool,
                    project_values: bool) -> None:
        """``model.mate_attention``, ``model.board_embedding`` and ``model.neighbor`` (the loss)."""
        model.mate_attention = BoardMateAttention(dim, mate_heads, residual=False, project_values=project_values)
        model.board_embedding = nn.Embedding(model.num_boards, dim)
        nn.init.normal_(model.board_embedding.weight, std=dim ** -0.5)
        model.neighbor = NeighborAlignmentLoss(gather=gather, symmetric=symmetric)

    @staticmethod
    def graph_terms(model: "PinCLIPModel", seeds: Tensor, table: Tensor, step: StepInputs,
                    weights: dict[str, float]) -> tuple[dict[str, Tensor], Tensor | None, Tensor | None]:
        """``mates`` / ``board`` (those weighted) and ``pairs``; the fused target ``[B, E]`` and the
        mates' mask ``[B, K]``."""
        out: dict[str, Tensor] = {}
        mates, mask = gather_mates(table, step.mates_local)
        target = model.mate_attention(seeds, mates, mask)
        if weights.get("pairs", 0):
            # pairwise co-board InfoNCE against every sampled mate (K positives per seed)
            cols = [k for k in range(mates.shape[1]) if bool(mask[:, k].any())]
            out["pairs"] = torch.stack([model.neighbor(seeds, mates[:, k], step.pin_boards, has_mates=mask[:, k])["mates"]
                                        for k in cols]).mean() if cols else seeds.sum() * 0.0
        negatives = neg_logq = None
        if step.negatives_local is not None:
            valid = step.negatives_local >= 0
            negatives = table[step.negatives_local[valid]]
            neg_logq = step.negatives_logq[valid] if step.negatives_logq is not None else None
        board = board_index = has_board = None
        if weights.get("board", 0):
            board_index = step.mate_boards[:, 0]
            has_board = board_index >= 0
            board = model.board_embedding(board_index.clamp_min(0))
        terms = model.neighbor(seeds, target, step.pin_boards, has_mates=mask.any(1), negatives=negatives,
                               neg_logq=neg_logq, board=board, board_index=board_index, has_board=has_board)
        out.update({k: v for k, v in terms.items() if weights.get(k, 0)})
        return out, target, mask

    @staticmethod
    def prefix_terms(model: "PinCLIPModel", t, pe, seeds: Tensor, present: Tensor, target: Tensor | None,
                     mask: Tensor | None, step: StepInputs) -> list[Tensor]:
        """The ``mates`` term on the prefix ``t(.)``."""
        return [model.neighbor(t(seeds), t(target), step.pin_boards, has_mates=mask.any(1))["mates"]]


class NeighborIdKind(NeighborKind):
    """``neighbor_id``: ``neighbor`` with a learned ID embedding per pin seen in training added to its
    content embedding (``model.id_embedding``; ``model.id_dropout`` of the warm pins of a batch train
    without it, so the content path that serves cold pins keeps learning)."""

    #: the factory gives the encoder an ID table (:meth:`boardgraph.training.TrainConfig.uses_ids`)
    uses_ids = True


class NeighborCfKind(NeighborIdKind):
    """``neighbor_cf``: ``neighbor_id``, then the collaborative refinement of the warm pins' IDs
    after the last step (:mod:`boardgraph.training.refine`: a board-completion softmax over every
    warm pin, content frozen; ``optim.refine_*``), with the board query
    (:mod:`boardgraph.inference.board_query`) that validates best."""

    #: the trainer runs :func:`boardgraph.training.refine.refine_ids` after the last step
    refines_ids = True
    #: how boards score pins (``objective.board_query``), in the refinement and at serving: chosen
    #: between the centroid and attention over the board's pins on the refinement's validation
    #: copy (attention if no validation runs)
    board_query_default = "auto"
    board_query_unresolved = "attention"


register_model("content", family="trained", loss_weights={"clip": 1.0, "pin_modality": 1.0, "matryoshka": 0.5},
               summary="content-only training: image-text and pin-modality alignment, no graph signal")(ContentKind)
register_model("coboard", family="trained",
               loss_weights={"clip": 1.0, "pin_modality": 1.0, "coboard": 1.0, "matryoshka": 0.5},
               summary="pairwise co-board contrastive training against one board-mate "
                       "(no cross-attention)")(CoBoardKind)
#: the loss weights of ``neighbor``, and of ``neighbor_id`` (the same terms)
_NEIGHBOR_WEIGHTS = {"clip": 1.0, "pin_modality": 1.0, "mates": 1.0, "pairs": 1.0, "board": 0.5, "matryoshka": 0.5}
register_model("neighbor", family="trained", loss_weights=_NEIGHBOR_WEIGHTS,
               summary="ours: PinCLIP neighbor alignment with the cross-attention fusion of board-mates")(NeighborKind)
register_model("neighbor_id", family="trained", loss_weights=_NEIGHBOR_WEIGHTS,
               summary="neighbor alignment on content + a learned ID embedding per warm pin "
                       "(ID dropout 0.5)")(NeighborIdKind)
register_model("neighbor_cf", family="trained", loss_weights=_NEIGHBOR_WEIGHTS,
               summary="neighbor_id, then a collaborative refinement of the warm pins' IDs (board-completion "
                       "softmax, length chosen on validation); boards score pins by the query that validates best (centroid or attention over their pins)"
               )(NeighborCfKind)


def trained_kinds() -> tuple[str, ...]:
    """Names of the registered trained kinds (``ObjectiveConfig.kind`` accepts these)."""
    return MODEL_KINDS.names("trained")


def default_weights(kind: str) -> dict[str, float]:
    """The loss weights a trained ``kind`` uses when the config gives none (from its registry entry).

    Raises:
        UnknownModelError: ``kind`` is not a registered model; ValueError: it is not a trained kind.
    """
    spec = MODEL_KINDS.get(kind)
    if spec.family != "trained":
        raise ValueError(f"{kind!r} is a {spec.family} baseline, not a trained kind; "
                         f"trained kinds: {list(MODEL_KINDS.names('trained'))}")
    return dict(spec.loss_weights)


class PinCLIPModel(nn.Module):
    """Encoder + training heads (see the module docstring).

    Args:
        encoder: the :class:`~boardgraph.encoders.PinEncoder`.
        num_boards: boards of the training graph (rows of the board embedding table).
        kind: a registered trained kind (:func:`trained_kinds`: ``content``, ``coboard``, ``neighbor``, ...).
        alignment: ``clip`` or ``siglip`` for the image-text term.
        mate_heads: heads of the board-mate cross-attention.
        gather: gather in-batch negatives across ranks (torch.distributed).
        project_values: the mate attention's values go through learned projections; by default
            (False) the target is an attention-weighted average of the mates' own embeddings, in
            the space retrieval uses.
        bank_size: pins of the embedding bank (0: no bank). With a bank, board-mates and sampled
            negatives are read from it (detached, refreshed with every seed's new embedding) instead
            of being encoded in the step: a neighbor step then costs about one content-only step.
        symmetric: the graph terms (``mates``, ``pairs``, ``coboard``) average both InfoNCE
            directions (see :class:`~boardgraph.objectives.NeighborAlignmentLoss`).
    """

    def __init__(self, encoder: PinEncoder, num_boards: int, kind: str = "neighbor", alignment: str = "clip",
                 mate_heads: int = 4, gather: bool = True, bank_size: int = 0, project_values: bool = False,
                 symmetric: bool = False) -> None:
        super().__init__()
        default_weights(kind)  # a registered trained kind, else a clear error
        self.encoder, self.kind, self.num_boards = encoder, kind, num_boards
        self.ops = MODEL_KINDS.get(kind).build
        dim = encoder.config.embed_dim
        self.align = (ClipLoss if alignment == "clip" else SigLipLoss)(gather=gather)
        if not {"image", "text"} <= set(encoder.modalities):
            # no image-text pair to align (a text-only catalogue): its scale never gets a gradient,
            # which DDP would take for a bug of ours; it stays in the state dict, frozen
            self.align.requires_grad_(False)
        self.pin_modality = ClipLoss(gather=gather)
        self.ops.add_modules(self, dim, mate_heads=mate_heads, gather=gather, symmetric=symmetric,
                             project_values=project_values)
        self.register_buffer("bank", torch.zeros(bank_size if self.ops.reads_mates else 0, dim))

    @torch.no_grad()
    def update_bank(self, pins: Tensor, embedding: Tensor) -> None:
        """Write detached ``embedding [n, E]`` of global pin indices ``pins [n]`` into the bank."""
        if self.bank.numel():
            self.bank[pins.to(self.bank.device)] = embedding.detach().to(self.bank.dtype)

    def forward(self, step: StepInputs, weights: dict[str, float], *, outputs: dict[str, TowerOutput] | None = None,
                present: Tensor | None = None, inputs=None, index: Tensor | None = None
                ) -> tuple[dict[str, Tensor], Tensor]:
        """Loss terms of a batch from cached tower ``outputs`` + ``present``, or from raw ``inputs``
        (:class:`~boardgraph.encoders.PinInputs`, towers run end to end), and the seeds' detached
        embeddings ``[B, E]`` (for the bank). Being ``forward``, it works under DDP."""
        pe = self.encoder(inputs) if inputs is not None else fuse_cached(self.encoder, outputs, present, index)
        return self.losses(pe, step, weights), pe.embedding[step.seed_local].detach()

    def losses(self, pe, step: StepInputs, weights: dict[str, float]) -> dict[str, Tensor]:
        """Loss terms of one batch (only those with a non-zero weight are computed).

        Args:
            pe: the :class:`~boardgraph.encoders.PinEmbedding` of every pin the batch needs.
            step: the batch's indices (:class:`StepInputs`).
            weights: loss weights (decide which terms run).
        """
        out: dict[str, Tensor] = {}
        s = step.seed_local
        emb = pe.embedding
        seeds = emb[s]
        present = pe.present[s]
        mods = [m for m in ("image", "text") if m in pe.modality]
        if weights.get("clip", 0) and len(mods) == 2:
            i, t = MODALITIES.index("image"), MODALITIES.index("text")
            out["clip"] = self.align(pe.modality["image"][s], pe.modality["text"][s], present[:, i] & present[:, t])
        if weights.get("pin_modality", 0):
            terms = [self.pin_modality(seeds, pe.modality[m][s], present[:, MODALITIES.index(m)])
                     for m in pe.modality]
            out["pin_modality"] = torch.stack(terms).mean()
        table = self.bank if step.from_bank else emb
        terms, target, mask = self.ops.graph_terms(self, seeds, table, step, weights)
        out.update(terms)
        if weights.get("matryoshka", 0):
            out["matryoshka"] = self._matryoshka(pe, seeds, present, step, target, mask)
        return out

    def _matryoshka(self, pe, seeds: Tensor, present: Tensor, step: StepInputs, target: Tensor | None,
                    mask: Tensor | None) -> Tensor:
        """The kind's main pin-level term on each shorter embedding prefix, averaged."""
        terms: list[Tensor] = []
        for d in self.encoder.config.matryoshka_dims[:-1]:
            terms += self.ops.prefix_terms(self, lambda x, d=d: truncate_embedding(x, d), pe, seeds, present,
                                           target, mask, step)
        return torch.stack(terms).mean() if terms else seeds.sum() * 0.0
