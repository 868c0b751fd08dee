"""boardgraph.inference: a trained run's embeddings, the retrieval index and the apps built on them.

Stage of the flow: trained run -> embeddings -> index -> search, similar pins, complete the look.
"""
from boardgraph._imports import lazy_exports

#: public name -> the module that defines it (imported on first use; see :func:`boardgraph._imports.lazy_exports`)
_EXPORTS = {
    "board_centroids": "embed",
    "embed_pins": "embed",
    "encode_pins": "embed",
    "load_embeddings": "embed",
    "EmbeddingIndex": "index",
    "IndexConfig": "index",
    "SearchResult": "index",
    "TuneResult": "index",
    "TfidfVectorizer": "lexical",
    "hybrid_embeddings": "lexical",
    "pin_texts": "lexical",
    "tfidf_embeddings": "lexical",
    "TrainedRun": "run",
    "load_run": "run",
    "PinSearch": "search",
    "Placement": "search",
    "catalogue_index": "catalogue",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
