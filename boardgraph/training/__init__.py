"""boardgraph.training: configs, the model factory, the trainer and its checkpoints.

Stage of the flow: graph + config -> sampler -> mini-batch -> encoder -> objective -> weights.
"""
from boardgraph._imports import lazy_exports

#: public name -> the module that defines it (imported on first use; see :func:`boardgraph._imports.lazy_exports`)
_EXPORTS = {
    "ConfigError": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "ObjectiveConfig": "config",
    "OptimConfig": "config",
    "RunConfig": "config",
    "TrainConfig": "config",
    "ModelParts": "factory",
    "build_encoder_for": "factory",
    "build_model": "factory",
    "load_graph_for": "factory",
    "NonFiniteLossError": "trainer",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "resolve_device": "trainer",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
