"""boardgraph.evaluation: splits, metrics, the harness that runs every model kind, tables and reports.

Stage of the flow: embeddings or scorers -> board completion (warm and cold) -> statistics -> report.
"""
from boardgraph._imports import lazy_exports

#: public name -> the module that defines it (imported on first use; see :func:`boardgraph._imports.lazy_exports`)
_EXPORTS = {
    "BoardCompletion": "completion",
    "EmbeddingScorer": "completion",
    "Scorer": "completion",
    "board_completion": "completion",
    "cross_modal": "completion",
    "Experiment": "harness",
    "ModelRun": "harness",
    "compare_models": "harness",
    "run_experiment": "harness",
    "RankingResult": "metrics",
    "ranking_metrics": "metrics",
    "sanity_checks": "sanity",
    "DataSplit": "splits",
    "split_memberships": "splits",
    "split_reserved_boards": "splits",
    "BootstrapResult": "stats",
    "bootstrap_ci": "stats",
    "paired_bootstrap": "stats",
    "StudyResult": "study",
    "evaluate_graph": "study",
    "format_table": "tables",
    "results_table": "tables",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
