"""boardgraph.encoders: multimodal pin encoders (the "hybrid ViT" of the PinCLIP recipe).

- Towers (:mod:`.registry` protocol): image (timm, :class:`TimmImageEncoder`; EfficientNet-Lite0),
  text (transformers, :class:`HFTextEncoder`; all-MiniLM-L6-v2), a CLIP/SigLIP backbone serving as
  both (:func:`load_vlm_towers`), metadata (:class:`MetadataEncoder` with :class:`MetadataSchema`).
  ``register_encoder`` / ``build_encoder`` / ``list_encoders`` plug in your own.
- :class:`PinEncoder`: towers -> hybrid (token-level + embedding-level) fusion -> L2-normalised
  Matryoshka embedding, with per-modality embeddings for alignment; :class:`PinInputs` /
  :class:`PinInputBuilder` read its inputs from a graph's feature store.
- :class:`BoardMateAttention`: a pin cross-attends to its board-mates.
- :class:`FeatureCache`: frozen tower outputs, memory-mapped, for fast training on CPU.
- :func:`export_onnx` / :class:`OnnxPinEncoder`: serving through ONNX Runtime.

Nothing here downloads weights: towers load from local paths or start from random init.
"""
from .cache import FeatureCache, tower_fingerprint
from .efficientnet_lite import EfficientNetLiteConfig, EfficientNetLiteEncoder
from .errors import (EncoderConfigError, EncoderError, EncoderProtocolError, FeatureCacheError,
                     MissingDependencyError, UnknownEncoderError)
from .export import OnnxPinEncoder, export_onnx, onnx_input_names
from .fusion import FusionConfig, HybridFusion
from .id_table import IdTable, hash_rows
from .image import TINY_VIT_KWARGS, ImagePreprocess, TimmImageConfig, TimmImageEncoder
from .inputs import PinInputBuilder, PinInputs
from .layers import MultiHeadAttention, TransformerBlock, masked_mean
from .matryoshka import MATRYOSHKA_DIMS, matryoshka_embeddings, truncate_embedding
from .metadata import MetadataConfig, MetadataEncoder, MetadataSchema
from .model import PinEmbedding, PinEncoder, PinEncoderConfig, fuse_cached
from .neighbors import BoardMateAttention, gather_mates
from .registry import (MODALITIES, EncoderConfig, EncoderEntry, TowerOutput, build_encoder, check_tower,
                       encoder_entry, list_encoders, register_encoder, unregister_encoder)
from .text import HFTextConfig, HFTextEncoder, minilm_l6_path, wordpiece_tokenizer
from .vlm import HFVLMConfig, VLMImageEncoder, VLMTextEncoder, load_vlm_towers

__all__ = [
    # registry and protocol
    "MODALITIES", "TowerOutput", "EncoderConfig", "EncoderEntry", "register_encoder", "build_encoder",
    "list_encoders", "encoder_entry", "check_tower", "unregister_encoder",
    # towers
    "ImagePreprocess", "TimmImageConfig", "TimmImageEncoder", "TINY_VIT_KWARGS", "HFTextConfig", "HFTextEncoder",
    "wordpiece_tokenizer", "minilm_l6_path", "HFVLMConfig", "VLMImageEncoder", "VLMTextEncoder", "load_vlm_towers",
    "MetadataSchema", "MetadataConfig", "MetadataEncoder", "EfficientNetLiteConfig", "EfficientNetLiteEncoder",
    # inputs, fusion, encoder
    "PinInputs", "PinInputBuilder", "FusionConfig", "HybridFusion", "PinEncoderConfig", "PinEncoder", "PinEmbedding", "fuse_cached",
    "IdTable", "hash_rows",
    "BoardMateAttention", "gather_mates", "MultiHeadAttention", "TransformerBlock", "masked_mean",
    # matryoshka
    "MATRYOSHKA_DIMS", "truncate_embedding", "matryoshka_embeddings",
    # cache and serving
    "FeatureCache", "tower_fingerprint", "export_onnx", "OnnxPinEncoder", "onnx_input_names",
    # errors
    "EncoderError", "EncoderConfigError", "EncoderProtocolError", "UnknownEncoderError", "MissingDependencyError",
    "FeatureCacheError",
]
