"""boardgraph.objectives: image-text alignment, neighbor alignment and the baselines' losses."""
from .baselines import CoBoardContrastiveLoss, HardNegativeCurriculum, pinsage_margin_loss
from .contrastive import ClipLoss, LogitScale, SigLipLoss
from .distributed import gather_features, world_info
from .infonce import info_nce, info_nce_logits
from .multitask import combine_losses
from .neighbor import NeighborAlignmentLoss, shared_board_mask

__all__ = ["ClipLoss", "SigLipLoss", "LogitScale", "NeighborAlignmentLoss", "shared_board_mask", "info_nce",
           "info_nce_logits", "pinsage_margin_loss", "HardNegativeCurriculum", "CoBoardContrastiveLoss",
           "combine_losses", "gather_features", "world_info"]
