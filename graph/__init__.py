"""boardgraph.graph: the heterogeneous Pin-Board store, builders, io and validation."""
from .csr import Relation, build_relation
from .errors import (BoardgraphError, BuildError, DuplicateIdError, GraphFormatError, ImageReadError,
                     MalformedValueError, NullIdError, SchemaError, UnknownIdError)
from .features import FEATURE_KINDS, FeatureSource, NodeFeatures, decode_image
from .idmap import IdMap
from .store import HAS, MEMBER, EdgeType, PinBoardGraph

__all__ = [
    "PinBoardGraph", "EdgeType", "MEMBER", "HAS", "Relation", "build_relation", "IdMap", "NodeFeatures", "FeatureSource",
    "FEATURE_KINDS", "decode_image", "BoardgraphError", "BuildError", "SchemaError", "NullIdError",
    "UnknownIdError", "DuplicateIdError", "MalformedValueError", "ImageReadError", "GraphFormatError",
]
from .builders import from_collections, from_interactions, read_table
from .describe import DegreeStats, GraphSummary
from .io import save_graph
from .store import load_graph
from .privacy import filter_consent, filter_min_group_size, pseudonymize
from .build_report import BuildReport

__all__ += ["from_collections", "from_interactions", "read_table", "BuildReport", "GraphSummary", "DegreeStats",
            "save_graph", "load_graph", "pseudonymize", "filter_consent", "filter_min_group_size"]
