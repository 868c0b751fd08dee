"""ONNX export of the inference path and an ONNX Runtime runner.

Two graphs can be exported from a :class:`~boardgraph.encoders.PinEncoder`:

- ``part="full"``: raw inputs -> L2-normalised embedding. Inputs (only those of the encoder's
  towers): ``present`` bool ``[B, 3]``, ``images`` uint8 ``[B, 3, H, W]``, ``input_ids`` /
  ``attention_mask`` int64 ``[B, L]``, ``categorical`` int64 ``[B, C]``, ``numeric`` float32
  ``[B, F]``, ``numeric_missing`` bool ``[B, F]``. Tokenisation and metadata encoding stay in
  Python (:class:`~boardgraph.encoders.PinInputBuilder`).
- ``part="fusion"``: cached tower outputs -> embedding (projections + fusion + head). Inputs:
  ``present`` and, per modality ``m``, ``m_tokens`` ``[B, N_m, D_m]``, ``m_mask`` bool
  ``[B, N_m]``, ``m_pooled`` ``[B, P_m]``.

The batch dimension (and text length) is dynamic; image height/width are fixed to the example's,
because resizing decisions are taken at export time. The export uses the TorchScript-based
exporter (``dynamo=False``), which needs no extra packages.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .errors import EncoderConfigError, EncoderError
from .inputs import PinInputs
from .registry import TowerOutput

__all__ = ["export_onnx", "OnnxPinEncoder", "onnx_input_names"]

_FIELDS = {"image": ("images",), "text": ("input_ids", "attention_mask"),
           "metadata": ("categorical", "numeric", "numeric_missing")}


def onnx_input_names(encoder: Any, part: str = "full") -> list[str]:
    """Input names of the exported graph, in order (see the module docstring)."""
    if part == "full":
        return ["present"] + [f for m in encoder.modalities for f in _FIELDS[m]]
    if part == "fusion":
        return ["present"] + [f"{m}_{p}" for m in encoder.modalities for p in ("tokens", "mask", "pooled")]
    raise EncoderConfigError(f"part must be 'full' or 'fusion', got {part!r}",
                             fix="full: raw inputs -> embedding; fusion: cached tower outputs -> embedding")


class _Graph(nn.Module):
    """Positional-tensor wrapper of the encoder that the exporter traces."""

    def __init__(self, encoder: Any, part: str) -> None:
        super().__init__()
        self.encoder, self.part = encoder, part
        self.names = onnx_input_names(encoder, part)

    def forward(self, *tensors: Tensor) -> Tensor:
        kw = dict(zip(self.names, tensors))
        if self.part == "full":
            return self.encoder(PinInputs(**kw)).embedding
        outs = {m: TowerOutput(kw[f"{m}_tokens"], kw[f"{m}_mask"], kw[f"{m}_pooled"]) for m in self.encoder.modalities}
        return self.encoder.fuse(outs, kw["present"]).embedding


def _arguments(encoder: Any, part: str, inputs: PinInputs | tuple[Mapping[str, TowerOutput], Tensor]) -> list[Tensor]:
    if part == "full":
        if not isinstance(inputs, PinInputs):
            raise EncoderConfigError("part='full' needs a PinInputs example", fix="pass builder(features, idx)")
        args = [inputs.present]
        for name in onnx_input_names(encoder, part)[1:]:
            t = getattr(inputs, name)
            if t is None:
                raise EncoderConfigError(f"the example has no {name}", fix="build it with encoder.input_builder(...)")
            args.append(t)
        return args
    outs, present = inputs  # type: ignore[misc]
    return [present] + [getattr(outs[m], p) for m in encoder.modalities for p in ("tokens", "mask", "pooled")]


def export_onnx(encoder: Any, path: str | os.PathLike, example: PinInputs | tuple[Mapping[str, TowerOutput], Tensor],
                part: str = "full", opset: int = 17, atol: float | None = 1e-4) -> Path:
    """Export ``encoder`` (eval mode, on CPU) to ``path`` and, with ``atol``, check it with ONNX Runtime.

    Args:
        encoder: a :class:`~boardgraph.encoders.PinEncoder`.
        path: ``.onnx`` file to write (parent must exist).
        example: ``PinInputs`` for ``part="full"``; ``(tower outputs, present)`` for ``part="fusion"``.
        part: ``"full"`` or ``"fusion"`` (module docstring).
        opset: ONNX opset.
        atol: maximum allowed absolute difference between ONNX Runtime and torch on the example
            (None skips the check).

    Raises:
        EncoderError: the exported graph differs from torch by more than ``atol``.
    """
    path = Path(path)
    names = onnx_input_names(encoder, part)
    devices = {p.device.type for p in encoder.parameters()}
    if devices != {"cpu"}:
        raise EncoderConfigError(f"the encoder is on {sorted(devices)}; export traces it on CPU",
                                 fix="export a CPU copy: export_onnx(copy.deepcopy(encoder).cpu(), ...)")
    was_training = encoder.training
    graph = _Graph(encoder, part).eval()  # the exporter restores the wrapper's mode afterwards: keep it eval
    args = [a.cpu() for a in _arguments(encoder, part, example)]
    dynamic: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    for n in ("input_ids", "attention_mask", "text_tokens", "text_mask"):
        if n in dynamic:
            dynamic[n][1] = "text_len"
    dynamic["embedding"] = {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-constant shapes, by design
            expected = graph(*args).numpy()
            torch.onnx.export(graph, tuple(args), str(path), dynamo=False, input_names=names,
                              output_names=["embedding"], dynamic_axes=dynamic, opset_version=opset,
                              do_constant_folding=True)
    finally:
        encoder.train(was_training)
    _set_metadata(path, part)
    if atol is not None:
        got = OnnxPinEncoder(path).run(args)
        err = float(np.abs(got - expected).max()) if expected.size else 0.0
        if not err <= atol:
            raise EncoderError(f"ONNX Runtime differs from torch by {err:.3g} (> atol={atol}) on the example",
                               fix="report the model; try another opset or check for data-dependent control flow")
    return path


def _set_metadata(path: Path, part: str) -> None:
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "boardgraph.part", part
    onnx.save(model, str(path))


class OnnxPinEncoder:
    """Runs an exported pin encoder with ONNX Runtime on CPU (or the given providers).

    Args:
        path: the ``.onnx`` file from :func:`export_onnx`.
        threads: intra-op threads (None: ONNX Runtime's default).
        providers: execution providers (default ``["CPUExecutionProvider"]``).

    ``__call__(inputs)`` takes ``PinInputs`` (full graphs) or ``(tower outputs, present)``
    (fusion graphs) and returns float32 ``[B, E]`` embeddings as a CPU tensor.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.part = self.session.get_modelmeta().custom_metadata_map.get("boardgraph.part", "full")

    def run(self, tensors: Sequence[Tensor | np.ndarray]) -> np.ndarray:
        """Run on positional inputs in :attr:`input_names` order -> float32 ``[B, E]`` array."""
        feed = {n: (t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t))
                for n, t in zip(self.input_names, tensors)}
        return self.session.run(["embedding"], feed)[0]

    def __call__(self, inputs: PinInputs | tuple[Mapping[str, TowerOutput], Tensor]) -> Tensor:
        if self.part == "full":
            if not isinstance(inputs, PinInputs):
                raise EncoderConfigError("this is a full graph; pass PinInputs", fix="or export part='fusion'")
            tensors = [getattr(inputs, n) for n in self.input_names]
        else:
            outs, present = inputs  # type: ignore[misc]
            tensors = [present] + [getattr(outs[n.rsplit("_", 1)[0]], n.rsplit("_", 1)[1]) for n in self.input_names[1:]]
        return torch.from_numpy(self.run(tensors))

