from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from boardgraph.encoders import (EncoderConfigError, MetadataSchema, PinInputBuilder, PinInputs, build_encoder)
from boardgraph.graph import NodeFeatures


def test_builder_on_synthetic_pins(pin_features, schema):
    text = build_encoder("hf_text")
    b = PinInputBuilder(tokenize=text.tokenize, schema=schema, max_length=20)
    x = b(pin_features, torch.tensor([3, 0, 7]))
    assert x.index.tolist() == [3, 0, 7] and x.batch_size == 3
    assert x.images.dtype == torch.uint8 and x.images.shape == (3, 3, 32, 32)
    assert torch.equal(x.images, pin_features.images("image", torch.tensor([3, 0, 7])))
    assert x.input_ids.shape == x.attention_mask.shape == (3, 20)  # padded to max_length
    assert x.categorical.shape == (3, 2) and x.numeric.shape == x.numeric_missing.shape == (3, 1)
    assert x.present.all()
    ids, _ = text.tokenize([pin_features.text("title", [0])[0]], [pin_features.text("description", [0])[0]],
                           max_length=20, pad_to_max=True)
    assert torch.equal(x.input_ids[1], ids[0])  # title first segment, description second


def test_presence_flags_follow_missing_values(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    paths[1] = str(tmp_path / "missing.png")
    f = NodeFeatures(4)
    f.add_column("title", ["red dress", "", None, "   "], "text")
    f.add_column("description", ["", "", "blue", None], "text")
    f.add_column("image", paths + [None], "image")
    f.add_column("brand", ["a", None, None, "b"], "categorical")
    f.add_column("price", [1.0, None, 2.0, None], "numeric")
    schema = MetadataSchema.fit(f)
    x = PinInputBuilder(tokenize=build_encoder("hf_text").tokenize, schema=schema, image_size=8)(f, torch.arange(4))
    assert x.present[:, 0].tolist() == [True, False, True, False]  # unreadable / absent image files
    assert x.present[:, 1].tolist() == [True, False, True, False]  # blank title + description -> no text
    assert x.present[:, 2].tolist() == [True, False, True, True]  # pin 1 has neither brand nor price
    assert x.images[1].eq(0).all() and x.images[2].eq(80).all()
    assert x.numeric_missing[:, 0].tolist() == [False, True, False, True]


def test_labels_and_unknown_fields_are_refused(pin_features, schema):
    tok = build_encoder("hf_text").tokenize
    with pytest.raises(EncoderConfigError, match="'style' is a label"):
        PinInputBuilder(tokenize=tok, schema=schema, text_fields=("title", "style"))(pin_features, [0])
    with pytest.raises(EncoderConfigError, match="no text feature 'caption'"):
        PinInputBuilder(tokenize=tok, schema=None, text_fields=("caption",))(pin_features, [0])
    with pytest.raises(EncoderConfigError, match="not a categorical feature"):
        MetadataSchema.fit(pin_features, categorical=["style"])


def test_without_select_to():
    x = PinInputs(present=torch.ones(3, 3, dtype=torch.bool), numeric=torch.arange(3.0)[:, None],
                  index=torch.tensor([5, 6, 7]))
    y = x.without("text", "image")
    assert y.present.tolist() == [[False, False, True]] * 3 and x.present.all()
    z = x.select(torch.tensor([2, 0]))
    assert z.index.tolist() == [7, 5] and z.numeric[:, 0].tolist() == [2.0, 0.0] and z.images is None
    assert x.to("cpu").numeric.device.type == "cpu"
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        x.without("audio")
    with pytest.raises(ValueError, match=r"present must be bool \[B, 3\]"):
        PinInputs(present=torch.ones(3, 2, dtype=torch.bool))
