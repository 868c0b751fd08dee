"""The multi-machine path on one machine: a graph built out of core, trained on by two torchrun
processes that memory-map it, embedded as one shard per rank, and indexed from the shards."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from boardgraph.cli import main
from boardgraph.datasets import make_lookbook_tables
from boardgraph.graph import from_collections
from boardgraph.graph.stream import StreamTuning
from boardgraph.inference.index import EmbeddingIndex
from boardgraph.inference.index_build import recall_on_shards
from boardgraph.inference.run import load_run
from boardgraph.inference.shards import EmbeddingShards, ShardsFormatError, shard_rows

from tests.training.test_trainer import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_rows_cover_every_pin_once():
    for n, w in ((10, 3), (7, 7), (5, 8), (1000, 4)):
        blocks = [shard_rows(n, r, w) for r in range(w)]
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert max(hi - lo for lo, hi in blocks) - min(hi - lo for lo, hi in blocks) <= 1


@pytest.mark.slow
def test_torchrun_on_an_out_of_core_graph_writes_shards_that_index(tmp_path, capsys):
    t = make_lookbook_tables(n_pins=400, n_boards=40, seed=3)
    t.memberships.to_parquet(tmp_path / "memberships.parquet", index=False)
    t.pins.to_parquet(tmp_path / "pins.parquet", index=False)
    _, report = from_collections(tmp_path / "memberships.parquet", items=tmp_path / "pins.parquet",
                                 text=["title", "description"], categorical=["brand", "category"],
                                 numeric=["price"], out=tmp_path / "graph", method="out-of-core",
                                 max_memory=StreamTuning(1 << 30, rows_per_batch=500, bucket_width=64,
                                                         capacity=2000))
    assert report.method == "out of core" and report.nodes["pin"] == 400
    cfg = tiny_config(tmp_path / "run", kind="neighbor", steps=4)
    cfg.data.source = str(tmp_path / "graph")
    cfg.model.image = None
    cfg.save(tmp_path / "cfg.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={_free_port()}", "-m", "boardgraph", "train", "--config",
                        str(tmp_path / "cfg.yaml"), "--embed-shards"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-8000:-4000]
    ranks = [json.loads((tmp_path / "run" / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["weight_sum"] == ranks[1]["weight_sum"] and ranks[0]["world_size"] == 2
    folder = tmp_path / "run" / "embeddings.shards"
    shards = EmbeddingShards.open(folder)
    assert len(shards) == 400 and [s["rows"] for s in shards.manifest["shards"]] == [[0, 200], [200, 400]]
    # the shards hold what one process embeds with the same weights, in the graph's pin order
    run = load_run(tmp_path / "run")
    whole = run.embed_pins().numpy()
    parts = list(shards)
    np.testing.assert_allclose(np.concatenate([v for _, v in parts]), whole, atol=2e-5)
    assert np.concatenate([i for i, _ in parts]).tolist() == run.graph.ids("pin").tolist()
    # an IVF-PQ index from the shards, through the CLI
    assert main(["index", "--from-shards", str(folder), "--out", str(tmp_path / "index"), "--pq-m", "8",
                 "--nlist", "4", "--nprobe", "4", "--rerank", "40", "--train-size", "400"]) == 0
    out = capsys.readouterr().out
    assert "ivfpq index of 400 pins" in out and "Recall@10 1.000" in out
    index = EmbeddingIndex.load(tmp_path / "index")
    # 8 sub-quantizers of 3 bits: 400 training vectors are too few for 256 centroids each
    assert index.kind == "ivfpq" and index.config.pq_m == 8 and index.code_bytes == 3
    assert "bytes per vector: 3 of PQ code + 8 of FAISS list id" in out
    # every cell probed and all 400 pins re-ranked exactly: exact search's answer; the 8-byte codes
    # alone rank worse
    assert recall_on_shards(index, shards, k=10, n_queries=100)["recall"] == 1.0
    res = index.search(whole[:3], 5)
    torch.testing.assert_close(torch.from_numpy(res.scores[:, 0]), torch.ones(3), atol=1e-4, rtol=0)
    for i in range(3):  # the pin itself, or a pin with the very same features (a tie at cosine 1)
        assert run.graph.ids("pin")[i] in res.ids[i] or res.scores[i, -1] > 1 - 1e-4
    index.config = replace(index.config, rerank=1)
    assert recall_on_shards(index, shards, k=10, n_queries=100)["recall"] < 0.95


def test_a_damaged_shard_folder_is_named(tmp_path):
    with pytest.raises(ShardsFormatError, match="is not a folder of embedding shards"):
        EmbeddingShards.open(tmp_path)
