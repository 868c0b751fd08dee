"""ONNX export of the inference path, run with ONNX Runtime: parity <= 1e-4, dynamic batch."""
from __future__ import annotations

import onnx
import pytest
import torch

from boardgraph.encoders import EncoderConfigError, OnnxPinEncoder, export_onnx, onnx_input_names


def _mixed_presence(x):
    x.present[0, 0] = False  # text + metadata only
    x.present[1, 1] = False  # image + metadata only
    x.present[2, 2] = False
    x.present[3, :2] = False  # metadata only
    return x


def test_full_graph_parity_with_dynamic_batch(encoder, builder, pin_features, tmp_path):
    path = export_onnx(encoder, tmp_path / "pin.onnx", builder(pin_features, torch.arange(2)))
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == onnx_input_names(encoder) == [
        "present", "images", "input_ids", "attention_mask", "categorical", "numeric", "numeric_missing"]
    assert model.graph.input[1].type.tensor_type.shape.dim[0].dim_param == "batch"
    ort = OnnxPinEncoder(path, threads=1)
    assert ort.part == "full"
    for idx in (torch.arange(10, 17), torch.tensor([100])):
        x = _mixed_presence(builder(pin_features, idx)) if len(idx) > 4 else builder(pin_features, idx)
        with torch.no_grad():
            ref = encoder(x).embedding
        got = ort(x)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() <= 1e-4
        torch.testing.assert_close(got.norm(dim=1), torch.ones(len(idx)))
    assert encoder.training is False  # export restores the mode


def test_fusion_graph_parity(encoder, builder, pin_features, tmp_path):
    with torch.no_grad():
        x = builder(pin_features, torch.arange(3))
        path = export_onnx(encoder, tmp_path / "fusion.onnx", (encoder.encode_towers(x), x.present), part="fusion")
        y = _mixed_presence(builder(pin_features, torch.arange(40, 48)))
        outs = encoder.encode_towers(y)
        ref = encoder.fuse(outs, y.present).embedding
    ort = OnnxPinEncoder(path)
    assert ort.part == "fusion" and ort.input_names[:4] == ["present", "image_tokens", "image_mask", "image_pooled"]
    assert (ort((outs, y.present)) - ref).abs().max().item() <= 1e-4


def test_text_only_encoder_exports(make, schema, pin_features, tmp_path):
    enc = make(("text",)).eval()
    b = enc.input_builder(schema, max_length=12)
    path = export_onnx(enc, tmp_path / "t.onnx", b(pin_features, torch.arange(2)))
    assert OnnxPinEncoder(path).input_names == ["present", "input_ids", "attention_mask"]
    x = b(pin_features, torch.arange(5))
    with torch.no_grad():
        assert (OnnxPinEncoder(path)(x) - enc(x).embedding).abs().max().item() <= 1e-4


def test_text_tower_with_lexical_branch_exports(schema, tiny_config, pin_features, tmp_path):
    from boardgraph.encoders import PinEncoder, build_encoder

    torch.manual_seed(0)
    text = build_encoder("hf_text", lexical_dim=16)
    enc = PinEncoder(text=text, config=tiny_config).eval()
    b = enc.input_builder(schema, max_length=12)
    text.fit_lexical(*[getattr(b(pin_features, torch.arange(50)), k) for k in ("input_ids", "attention_mask")])
    path = export_onnx(enc, tmp_path / "lex.onnx", b(pin_features, torch.arange(2)))
    x = b(pin_features, torch.arange(5))
    with torch.no_grad():
        assert (OnnxPinEncoder(path)(x) - enc(x).embedding).abs().max().item() <= 1e-4


def test_bad_part(encoder):
    with pytest.raises(EncoderConfigError, match="part must be 'full' or 'fusion', got 'towers'"):
        onnx_input_names(encoder, "towers")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_export_refuses_a_gpu_encoder(encoder, builder, pin_features, tmp_path):
    with pytest.raises(EncoderConfigError, match=r"the encoder is on \['cuda'\]"):
        export_onnx(encoder.cuda(), tmp_path / "x.onnx", builder(pin_features, torch.arange(2)))
