"""Feature fetching and the MiniBatch container."""
import io

import pytest
import torch
from PIL import Image

from boardgraph.graph import PinBoardGraph
from boardgraph.sampling import (BoardMateSampler, FeatureFetcher, GraphFeatureFetcher, MiniBatch,
                                 PinBoardLoader, SamplingError)


def test_default_fetcher_reads_every_non_label_feature(lookbook_cpu):
    f = GraphFeatureFetcher(lookbook_cpu)
    assert isinstance(f, FeatureFetcher)
    idx = torch.tensor([5, 0, 5])
    out = f({"pin": idx, "board": torch.tensor([1])})
    assert set(out["pin"]) == {"title", "description", "brand", "category", "price", "image"}
    assert set(out["board"]) == {"board_title"}
    feats = lookbook_cpu.features("pin")
    assert out["pin"]["description"] == feats.text("description", idx)
    assert out["pin"]["brand"].dtype == torch.int64 and out["pin"]["price"].dtype == torch.float32
    assert torch.equal(out["pin"]["image"][0], out["pin"]["image"][2])
    assert out["board"]["board_title"] == lookbook_cpu.features("board").text("board_title", torch.tensor([1]))


def test_selected_features_labels_on_request_and_unknown_names(lookbook_cpu):
    f = GraphFeatureFetcher(lookbook_cpu, {"pin": ["price", "style"]})
    out = f({"pin": torch.tensor([1, 2])})
    assert set(out["pin"]) == {"price", "style"}
    with pytest.raises(SamplingError, match="no feature 'colour'"):
        GraphFeatureFetcher(lookbook_cpu, {"pin": ["colour"]})


def test_image_references_are_decoded_per_fetch():
    g = PinBoardGraph()
    g.add_node_type("pin", ["a", "b"])
    blobs = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        buf = io.BytesIO()
        Image.new("RGB", (6, 4), colour).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    g.features("pin").add_column("photo", blobs, kind="image")
    out = GraphFeatureFetcher(g, image_size=8)({"pin": torch.tensor([1, 0])})
    img = out["pin"]["photo"]
    assert img.shape == (2, 3, 8, 8) and img.dtype == torch.uint8
    assert img[0, 2].min() == 255 and img[0, 0].max() == 0 and img[1, 0].min() == 255


def test_a_custom_fetcher_plugs_into_the_loader(lookbook_cpu):
    table = torch.randn(400, 8)

    class EmbeddingTable:
        def __call__(self, nodes):
            return {"pin": {"emb": table[nodes["pin"]]}}

    loader = PinBoardLoader(lookbook_cpu, BoardMateSampler(lookbook_cpu, 2), batch_size=32, features=EmbeddingTable())
    mb = next(iter(loader))
    assert torch.equal(mb.features["pin"]["emb"], table[mb.input_nodes["pin"]])


def test_minibatch_to_copies_every_tensor_and_keeps_text(lookbook_cpu):
    s = BoardMateSampler(lookbook_cpu, 3)
    mb = s.sample_minibatch(torch.tensor([1, 2, 3]), 0)
    mb.features = GraphFeatureFetcher(lookbook_cpu, {"pin": ["title", "price"]})(mb.input_nodes)
    moved = mb.to("cpu")
    assert moved is not mb and torch.equal(moved.mates_local, mb.mates_local)
    assert moved.features["pin"]["title"] == mb.features["pin"]["title"]
    assert moved.batch_size == 3 and moved.device.type == "cpu"
    assert mb.pin_memory().seeds.tolist() == [1, 2, 3]
    if torch.cuda.is_available():
        on = mb.pin_memory().to("cuda", non_blocking=True)
        assert on.board_mates.mates.is_cuda and on.features["pin"]["price"].is_cuda
        assert isinstance(on.features["pin"]["title"], list)
    assert isinstance(MiniBatch(seeds=torch.tensor([0])).blocks, list)
