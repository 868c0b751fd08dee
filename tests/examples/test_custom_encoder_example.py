"""The custom-encoder example trains end to end on the sampler (a short run)."""
import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_encoder_on_sampler.py"


@pytest.mark.slow
def test_custom_encoder_example_trains(capsys):
    spec = importlib.util.spec_from_file_location("custom_encoder_on_sampler", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    losses = mod.main(["--pins", "300", "--boards", "30", "--epochs", "2", "--batch-size", "64", "--device", "cpu"])
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    assert "style hit rate" in capsys.readouterr().out
