from boardgraph.data import split_memberships
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.demo import demo_config
from boardgraph.experiments import compare_models, format_table


def test_compare_models_smoke(tmp_path):
    split = split_memberships(synthetic_lookbooks(300, 30, seed=0), 0.2, 0.1, seed=0)

    def make(kind):
        cfg = demo_config(kind, tmp_path, n_pins=300, n_boards=30, steps=3)
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 64, "off", False
        return cfg

    runs = compare_models(split, ["content", "neighbor"], make)
    assert [r.kind for r in runs] == ["content", "neighbor"]
    assert runs[0].vs_reference == {} and set(runs[1].vs_reference) == {"warm", "cold"}
    w = runs[1].completion.warm["recall@10"]
    assert w.n_scored > 0 and 0.0 <= w.mean <= 1.0
    table = format_table(runs)
    assert table.splitlines()[0].startswith("| model | warm recall@10") and len(table.splitlines()) == 4
