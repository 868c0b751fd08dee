"""boardgraph.objectives: image-text alignment, neighbor alignment, the baselines' losses, and the
loss assembly of each trained kind (:mod:`.pinclip`, registered in :data:`boardgraph.models.MODEL_KINDS`)."""
from .margin import HardNegativeCurriculum, pinsage_margin_loss
from .contrastive import ClipLoss, LogitScale, SigLipLoss
from .distributed import gather_features, world_info
from .infonce import info_nce, info_nce_logits
from .multitask import combine_losses
from .neighbor import CoBoardContrastiveLoss, NeighborAlignmentLoss, shared_board_mask
from .pinclip import PinCLIPModel, StepInputs, default_weights, trained_kinds

__all__ = ["ClipLoss", "SigLipLoss", "LogitScale", "NeighborAlignmentLoss", "shared_board_mask", "info_nce",
           "info_nce_logits", "pinsage_margin_loss", "HardNegativeCurriculum", "CoBoardContrastiveLoss",
           "combine_losses", "gather_features", "world_info", "PinCLIPModel", "StepInputs", "default_weights",
           "trained_kinds"]
