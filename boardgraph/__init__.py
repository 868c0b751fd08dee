"""boardgraph: multimodal item representations on Pin-Board graphs."""
from boardgraph.graph import PinBoardGraph

__version__ = "0.1.0"
__all__ = ["PinBoardGraph", "__version__"]
