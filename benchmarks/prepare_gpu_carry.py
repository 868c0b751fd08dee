"""Fill ``.bench/`` (ignored by git) with what a lent GPU machine lacks, so that one device call
runs everything in ``benchmarks/gpu_check.sh``.

A lent machine gets the working tree and the paths named in ``carry`` (64 MiB in all), but not
``../shared`` nor the ``pretrained`` extra. This writes:

* ``.bench/make_bench_graph.py``: the reference graph generator from ``../shared/bench``;
* ``.bench/data/steam-bundles/``: the Steam bundles (under 1 MB), for ``$BOARDGRAPH_DATA``;
* ``.bench/minilm16/``: all-MiniLM-L6-v2 with its weights in float16 (45 MB instead of 91 MB;
  ``hf_text`` loads them back as float32).

Usage::

    python benchmarks/prepare_gpu_carry.py          # then: device run with carry [".bench"]
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    done = []
    gen = SHARED / "bench" / "make_bench_graph.py"
    if gen.exists():
        shutil.copy2(gen, out / gen.name)
        done.append(gen.name)
    steam = SHARED / "data" / "steam-bundles"
    if steam.is_dir():
        shutil.copytree(steam, out / "data" / "steam-bundles", dirs_exist_ok=True)
        done.append("data/steam-bundles")
    try:
        from safetensors.torch import load_file, save_file

        from boardgraph.encoders.text import minilm_l6_path
        src = minilm_l6_path()
    except Exception as exc:  # the pretrained extra is optional
        print(f"skipping MiniLM: {exc}", file=sys.stderr)
    else:
        dst = out / "minilm16"
        dst.mkdir(exist_ok=True)
        weights = load_file(src / "model.safetensors")
        save_file({k: v.half().contiguous() for k, v in weights.items()}, dst / "model.safetensors")
        for f in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            if (src / f).exists():
                shutil.copy2(src / f, dst / f)
        done.append("minilm16")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f".bench/: {', '.join(done) or 'nothing'} ({size:.1f} MiB; the carry limit is 64 MiB)")
    return 0 if size < 64 else 1


if __name__ == "__main__":
    raise SystemExit(main())
