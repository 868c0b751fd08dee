"""Encoder benchmark on the synthetic lookbooks (prints JSON lines).

Figures:
- ``train_throughput``: pins/s of one training step (forward, backward, Adam) at ``--batch``,
  end to end (towers trained, inputs read from the feature store) vs towers frozen and cached
  (rows read from a :class:`FeatureCache`, only fusion + projections trained). The objective is a
  placeholder (in-batch InfoNCE between the pin embedding and its image embedding).
- ``cache_build``: pins/s of building the cache (the towers once over all pins).
- ``latency``: p50/p99 ms at batch 1 and 32 in torch eager (``no_grad``, eval) vs ONNX Runtime on
  CPU, for the ``fusion`` path (cached tower outputs -> embedding: projections, fusion, head) and
  the ``full`` path (tensors -> embedding, towers included; tokenisation excluded), with the ratio
  ``ort_p50 / torch_p50`` (target for fusion at batch 1: <= 0.7).

Towers: ``--towers tiny`` (random 2-layer ViT at 32 px, tiny BERT, metadata) or ``pretrained``
(EfficientNet-Lite0 at 224 px + all-MiniLM-L6-v2 + metadata; needs the ``pretrained`` extra).

With ``--device cuda`` the training figures run on the GPU (latency stays on CPU: ONNX Runtime
is measured with its CPU provider).

Usage: python benchmarks/encoders.py [--towers tiny] [--pins 2048] [--batch 256] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F

from _common import emit
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.encoders import (FeatureCache, FusionConfig, MetadataConfig, MetadataSchema, OnnxPinEncoder,
                                 PinEncoder, PinEncoderConfig, build_encoder, export_onnx)


def make_encoder(towers: str, schema: MetadataSchema, seed: int = 0) -> PinEncoder:
    torch.manual_seed(seed)
    if towers == "tiny":
        image, text = build_encoder("vit_tiny_random"), build_encoder("hf_text")
    else:
        image, text = build_encoder("efficientnet_lite0"), build_encoder("minilm_l6")
    meta = build_encoder(MetadataConfig.from_schema(schema, dim=32))
    return PinEncoder(image, text, meta, PinEncoderConfig(FusionConfig(dim=64, depth=1, num_heads=4), embed_dim=256))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def time_steps(step, n: int, warmup: int = 2) -> list[float]:
    for i in range(warmup):
        step(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        step(warmup + i)
        out.append(time.perf_counter() - t)
    return out


def bench_training(args, enc: PinEncoder, features, builder, cache: FeatureCache) -> None:
    n, dev = features.num_nodes, args.device
    enc.to(dev)
    perms = [torch.randperm(n, generator=torch.Generator().manual_seed(i))[:args.batch] for i in range(64)]

    enc.freeze_towers(False).train()
    opt = torch.optim.Adam(enc.trainable_parameters(), lr=1e-4)

    def e2e(i: int) -> None:
        out = enc(builder(features, perms[i % 64]).to(dev))
        loss = info_nce(out.embedding, out.modality["image"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(dev)

    t_e2e = time_steps(e2e, args.steps)
    enc.freeze_towers(True).train()
    opt = torch.optim.Adam(enc.trainable_parameters(), lr=1e-4)

    def cached(i: int) -> None:
        outs, present = cache.get(perms[i % 64], device=dev)
        out = enc.fuse(outs, present)
        loss = info_nce(out.embedding, out.modality["image"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(dev)

    t_cached = time_steps(cached, args.steps)
    enc.cpu()
    for name, ts in (("end_to_end", t_e2e), ("frozen_cached", t_cached)):
        emit({"op": "train_throughput", "towers": args.towers, "device": dev, "mode": name, "batch": args.batch,
              "pins_per_s": round(args.batch / float(np.median(ts)), 1), "step_ms_median": round(1e3 * float(np.median(ts)), 1),
              "steps": len(ts)})
    emit({"op": "train_throughput_ratio", "towers": args.towers, "device": dev,
          "cached_over_e2e": round(float(np.median(t_e2e)) / float(np.median(t_cached)), 2)})


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def percentiles(ts: list[float]) -> tuple[float, float]:
    a = np.asarray(ts) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def bench_latency(args, enc: PinEncoder, features, builder, tmp: Path) -> None:
    enc.eval()
    with torch.no_grad():
        example = builder(features, torch.arange(2))
        full_path = export_onnx(enc, tmp / "full.onnx", example, part="full")
        fusion_path = export_onnx(enc, tmp / "fusion.onnx", (enc.encode_towers(example), example.present),
                                  part="fusion")
    sessions = {"full": OnnxPinEncoder(full_path, threads=args.threads),
                "fusion": OnnxPinEncoder(fusion_path, threads=args.threads)}
    for batch in (1, 32):
        x = builder(features, torch.arange(batch))
        with torch.no_grad():
            outs = enc.encode_towers(x)
        calls = {
            "full": (lambda: enc(x).embedding, [getattr(x, n) for n in sessions["full"].input_names]),
            "fusion": (lambda: enc.fuse(outs, x.present).embedding,
                       [x.present] + [getattr(outs[m], p) for m in enc.modalities for p in ("tokens", "mask", "pooled")]),
        }
        for path, (torch_fn, tensors) in calls.items():
            sess = sessions[path]
            feed = [t.numpy() for t in tensors]
            n = args.iters if batch == 1 else max(20, args.iters // 4)
            if args.towers == "pretrained" and path == "full":
                n = max(10, n // 10)
            with torch.no_grad():
                err = float(np.abs(sess.run(feed) - torch_fn().numpy()).max())
                t_torch = time_steps(lambda i: torch_fn(), n, warmup=5)
            t_ort = time_steps(lambda i: sess.run(feed), n, warmup=5)
            (tp50, tp99), (op50, op99) = percentiles(t_torch), percentiles(t_ort)
            emit({"op": "latency", "towers": args.towers, "path": path, "batch": batch, "iters": n,
                  "torch_p50_ms": round(tp50, 3), "torch_p99_ms": round(tp99, 3),
                  "ort_p50_ms": round(op50, 3), "ort_p99_ms": round(op99, 3),
                  "ort_over_torch_p50": round(op50 / tp50, 3), "max_abs_diff": float(f"{err:.3g}")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--towers", choices=("tiny", "pretrained"), default="tiny")
    ap.add_argument("--pins", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per mode")
    ap.add_argument("--iters", type=int, default=200, help="timed calls for batch-1 latency")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="where training runs (latency is always CPU)")
    ap.add_argument("--skip", nargs="*", default=(), choices=("train", "latency"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    g = synthetic_lookbooks(args.pins, max(8, args.pins // 10), seed=0)
    features = g.features("pin")
    schema = MetadataSchema.fit(features)
    enc = make_encoder(args.towers, schema)
    builder = enc.input_builder(schema, max_length=32, image_size=None)
    emit({"op": "config", "towers": args.towers, "pins": args.pins, "threads": args.threads,
          "params_total": sum(p.numel() for p in enc.parameters()),
          "params_fusion": sum(p.numel() for n, p in enc.named_parameters() if not n.startswith("towers.")),
          "torch": torch.__version__})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "train" not in args.skip:
            t = time.perf_counter()
            cache = FeatureCache.build(tmp / "cache", enc.to(args.device), features, builder, batch_size=args.batch)
            sync(args.device)
            s = time.perf_counter() - t
            size = sum(f.stat().st_size for f in (tmp / "cache").iterdir())
            emit({"op": "cache_build", "towers": args.towers, "device": args.device, "pins": args.pins, "seconds": round(s, 2),
                  "pins_per_s": round(args.pins / s, 1), "mb": round(size / 2**20, 1)})
            bench_training(args, enc, features, builder, cache)
        if "latency" not in args.skip:
            bench_latency(args, enc.cpu(), features, builder, tmp)


if __name__ == "__main__":
    main()
