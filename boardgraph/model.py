"""`PinCLIPModel`: the pin encoder plus what training needs around it (mate attention, board
embeddings, loss modules), and the per-batch loss computation of each model kind.

Kinds (``ObjectiveConfig.kind``):

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

The ``matryoshka`` term repeats the kind's main pin-level term (``mates``, ``coboard``, or
``pin_modality`` for content-only) on every shorter prefix of the embedding
(``PinEncoderConfig.matryoshka_dims``), so truncated embeddings stay useful.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from boardgraph.encoders import BoardMateAttention, PinEncoder, gather_mates, truncate_embedding
from boardgraph.encoders.registry import MODALITIES, TowerOutput
from boardgraph.objectives import ClipLoss, CoBoardContrastiveLoss, NeighborAlignmentLoss, SigLipLoss

__all__ = ["PinCLIPModel", "DEFAULT_WEIGHTS", "StepInputs"]

#: Loss weights used when the config gives none.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "neighbor": {"clip": 1.0, "pin_modality": 1.0, "mates": 1.0, "pairs": 1.0, "board": 0.5, "matryoshka": 0.5},
    "content": {"clip": 1.0, "pin_modality": 1.0, "matryoshka": 0.5},
    "coboard": {"clip": 1.0, "pin_modality": 1.0, "coboard": 1.0, "matryoshka": 0.5},
}


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


class PinCLIPModel(nn.Module):
    """Encoder + training heads (see the module docstring).

    Args:
        encoder: the :class:`~boardgraph.encoders.PinEncoder`.
        num_boards: boards of the training graph (rows of the board embedding table).
        kind: ``neighbor``, ``content`` or ``coboard``.
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
        if kind not in DEFAULT_WEIGHTS:
            raise ValueError(f"kind must be one of {sorted(DEFAULT_WEIGHTS)}, got {kind!r}")
        self.encoder, self.kind = encoder, kind
        dim = encoder.config.embed_dim
        self.align = (ClipLoss if alignment == "clip" else SigLipLoss)(gather=gather)
        self.pin_modality = ClipLoss(gather=gather)
        if kind == "neighbor":
            self.mate_attention = BoardMateAttention(dim, mate_heads, residual=False, project_values=project_values)
            self.board_embedding = nn.Embedding(num_boards, dim)
            nn.init.normal_(self.board_embedding.weight, std=dim ** -0.5)
            self.neighbor = NeighborAlignmentLoss(gather=gather, symmetric=symmetric)
        elif kind == "coboard":
            self.coboard = CoBoardContrastiveLoss(gather=gather, symmetric=symmetric)
        self.register_buffer("bank", torch.zeros(bank_size if kind != "content" else 0, dim))

    @torch.no_grad()
    def update_bank(self, pins: Tensor, embedding: Tensor) -> None:
        """Write detached ``embedding [n, E]`` of global pin indices ``pins [n]`` into the bank."""
        if self.bank.numel():
            self.bank[pins.to(self.bank.device)] = embedding.detach().to(self.bank.dtype)

    def forward(self, step: StepInputs, weights: dict[str, float], *, outputs: dict[str, TowerOutput] | None = None,
                present: Tensor | None = None, inputs=None) -> tuple[dict[str, Tensor], Tensor]:
        """Loss terms of a batch from cached tower ``outputs`` + ``present``, or from raw ``inputs``
        (:class:`~boardgraph.encoders.PinInputs`, towers run end to end), and the seeds' detached
        embeddings ``[B, E]`` (for the bank). Being ``forward``, it works under DDP."""
        pe = self.encoder(inputs) if inputs is not None else self.encoder.fuse(outputs, present)
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
        if self.kind == "neighbor":
            mates, mask = gather_mates(table, step.mates_local)
            target = self.mate_attention(seeds, mates, mask)
            if weights.get("pairs", 0):
                # pairwise co-board InfoNCE against every sampled mate (K positives per seed)
                cols = [k for k in range(mates.shape[1]) if bool(mask[:, k].any())]
                out["pairs"] = torch.stack([self.neighbor(seeds, mates[:, k], step.pin_boards, has_mates=mask[:, k])["mates"]
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
                board = self.board_embedding(board_index.clamp_min(0))
            terms = self.neighbor(seeds, target, step.pin_boards, has_mates=mask.any(1), negatives=negatives,
                                  neg_logq=neg_logq, board=board, board_index=board_index, has_board=has_board)
            out.update({k: v for k, v in terms.items() if weights.get(k, 0)})
        elif self.kind == "coboard":
            mates, mask = gather_mates(table, step.mates_local[:, :1])
            target = mates[:, 0]
            out["coboard"] = self.coboard(seeds, target, step.pin_boards, has_mate=mask[:, 0])
        if weights.get("matryoshka", 0):
            out["matryoshka"] = self._matryoshka(pe, seeds, present, step, target if self.kind != "content" else None,
                                                 mask if self.kind != "content" else None)
        return out

    def _matryoshka(self, pe, seeds: Tensor, present: Tensor, step: StepInputs, target: Tensor | None,
                    mask: Tensor | None) -> Tensor:
        """The kind's main pin-level term on each shorter embedding prefix, averaged."""
        dims = self.encoder.config.matryoshka_dims[:-1]
        terms = []
        for d in dims:
            t = lambda x: truncate_embedding(x, d)  # noqa: E731
            if self.kind == "neighbor":
                terms.append(self.neighbor(t(seeds), t(target), step.pin_boards, has_mates=mask.any(1))["mates"])
            elif self.kind == "coboard":
                terms.append(self.coboard(t(seeds), t(target), step.pin_boards, has_mate=mask[:, 0]))
            else:
                terms += [self.pin_modality(t(seeds), t(pe.modality[m][step.seed_local]),
                                            present[:, MODALITIES.index(m)]) for m in pe.modality]
        return torch.stack(terms).mean() if terms else seeds.sum() * 0.0
