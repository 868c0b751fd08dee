"""Multi-seed comparisons: trained model kinds and baselines on the same splits, with bootstrap CIs.

For every seed, :func:`run_experiment` draws one split (or takes ``split_fn(graph, seed)``), runs
every model on it and scores board completion (:func:`~boardgraph.evaluation.completion.board_completion`).
Models are the kinds of :data:`boardgraph.models.MODEL_KINDS`, run by family: trained kinds
(``content``, ``coboard``, ``neighbor``: :class:`~boardgraph.training.trainer.Trainer` with
``make_config(kind, seed)``), scorers (``random``, ``popularity``, ``itemknn``, ``ease``, ``pixie``,
``bpr``) and embedding baselines (``minilm``, ``tfidf``, ``towers``, ``pinsage``), registered in
:mod:`boardgraph.evaluation.baselines`. Tables: :mod:`boardgraph.evaluation.tables`; protocol
checks: :mod:`boardgraph.evaluation.sanity`.

Statistics:

* :meth:`Experiment.table`: per model and metric, the mean over seeds of the per-seed means, and a
  bootstrap CI that resamples the query boards within each seed (stratified by seed) and averages
  the seeds; ``sd`` is the spread of the per-seed means.
* :meth:`Experiment.paired`: the paired bootstrap of ``a - b`` with the per-query differences of
  all seeds concatenated (queries are paired within a seed: same split, same boards).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from boardgraph.evaluation.audit import matching_labels
from boardgraph.evaluation.baselines import PinSageConfig, tower_features
from boardgraph.evaluation.completion import (CURVE_KS, BoardCompletion, CrossModal, EmbeddingScorer, Scorer,
                                              board_completion, cross_modal)
from boardgraph.evaluation.metrics import MetricInputError
from boardgraph.evaluation.splits import DataSplit, split_memberships
from boardgraph.evaluation.stats import BootstrapResult, paired_bootstrap, stratified_bootstrap
from boardgraph.graph import PinBoardGraph
from boardgraph.inference.embed import iter_encoded
from boardgraph.inference.lexical import hybrid_embeddings, tfidf_embeddings
from boardgraph.models import MODEL_KINDS, ModelKind, UnknownModelError
from boardgraph.schema import GROUPS, MEMBER
from boardgraph.training.config import ConfigError, TrainConfig
from boardgraph.training.trainer import Trainer, resolve_device

__all__ = ["ModelRun", "Experiment", "RunContext", "FAMILY_RUNNERS", "run_experiment", "compare_models",
           "check_models", "LEXICAL_SUFFIX", "TABLE_METRICS"]

log = logging.getLogger(__name__)
#: ``"<model>+tfidf"`` names the hybrid of an embedding model with TF-IDF (:func:`~boardgraph.inference.lexical.hybrid_embeddings`).
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
        scorer: how the embeddings were scored when not by board centroids (a trained kind whose
            run serves attention board queries), else None.
    """

    model: str
    seed: int
    completion: BoardCompletion
    seconds: float
    embeddings: Tensor | None = None
    cross_modal: CrossModal | None = None
    scorer: Scorer | None = None


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
        no warm membership, e.g. :func:`~boardgraph.evaluation.splits.split_reserved_boards`)."""
        return all(self.run(model, s).completion.metrics(group)[metric].n_scored > 0 for s in self.seeds)

    def scored_groups(self, metric: str = "recall@10") -> list[str]:
        """The groups of :data:`~boardgraph.evaluation.completion.GROUPS` whose queries were scored (a split
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
        :data:`~boardgraph.evaluation.completion.GROUPS` and ``cold_all/warm <ratio>``, each
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
    emb, mods, present = [], {}, []
    for pe in iter_encoded(trainer.model.encoder, n, cache=trainer.cache, builder=trainer.builder,
                           features=trainer.split.graph.features("pin"), device=trainer.device, batch_size=batch_size):
        emb.append(pe.embedding.float().cpu())
        present.append(pe.present.cpu())
        for m, v in pe.modality.items():
            mods.setdefault(m, []).append(v.float().cpu())
    return torch.cat(emb), {m: torch.cat(v) for m, v in mods.items()}, torch.cat(present)


def check_models(models: Sequence[str]) -> list[str]:
    """``models`` as a list, after checking that every name is known, none repeats and every
    ``'<m>+tfidf'`` hybrid comes after ``m``.

    Raises:
        ValueError: the first of those that fails, naming the model.
    """
    unknown = [m for m in models if m not in MODEL_KINDS and not _hybrid_base(m)]
    if unknown:
        raise UnknownModelError(f"unknown model(s) {unknown}; choose from {list(MODEL_KINDS.names())}, or "
                                f"'<model>{LEXICAL_SUFFIX}' for an embedding model listed before it")
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
    return base if base in MODEL_KINDS and MODEL_KINDS.get(base).hybrid_base else None


@dataclass
class RunContext:
    """What the models of one experiment share: ``make_config``, per-model options and caches.

    Embedding baselines (:data:`~boardgraph.models.MODEL_KINDS` family ``embedding``) are called as
    ``build(context, seed, split)`` and read what they need from here.

    Attributes:
        make_config: ``(kind, seed) -> TrainConfig`` (None when no model needs one).
        options: model name -> its options (e.g. ``{"pinsage": PinSageConfig(...)}``).
    """

    make_config: MakeConfig | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def option(self, name: str) -> Any:
        """The options of model ``name``, or None."""
        return self.options.get(name)

    def cached(self, name: str, split: DataSplit, compute: Callable[[], Tensor]) -> Tensor:
        """``compute()`` once per ``(name, split.graph)``."""
        key = (name, id(split.graph))
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def tfidf(self, split: DataSplit) -> Tensor:
        """float32 ``[N_pins, 4096]`` TF-IDF vectors of the split's pins (shared by ``tfidf`` and the hybrids)."""
        return self.cached("tfidf", split, lambda: tfidf_embeddings(split.graph))

    def features(self, seed: int, split: DataSplit) -> tuple[Tensor, torch.device]:
        """Frozen content features of ``make_config("content", seed)``'s towers and the device they
        were computed on (:func:`~boardgraph.evaluation.baselines.tower_features`, cached per seed,
        sharing the config's feature cache)."""
        key = ("features", seed)
        if key not in self._cache:
            cfg = self.make_config("content", seed)
            dev = resolve_device(cfg.run.device)
            self._cache[key] = (tower_features(cfg.model, split.graph, seed=cfg.run.seed,
                                               cache_dir=Path(cfg.run.out_dir) / "feature_cache", device=dev), dev)
        return self._cache[key]


#: How each family runs: ``(kind, context, seed, split) -> (embeddings | None, scorer | None, cross-modal | None)``.
def _run_trained(kind: ModelKind, ctx: RunContext, seed: int, split: DataSplit):
    cfg = ctx.make_config(kind.name, seed)
    if cfg.objective.kind != kind.name:
        raise ConfigError(f"make_config({kind.name!r}, {seed}) returned objective.kind "
                          f"{cfg.objective.kind!r}; set it to {kind.name!r}")
    trainer = Trainer(cfg, split=split)
    trainer.fit()
    emb, mods, present = _encode_all(trainer, split.graph.num_nodes("pin"))
    cm = None
    if "image" in mods and "text" in mods and bool((present[:, 0] & present[:, 1]).any()):
        cm = cross_modal(mods["image"], mods["text"], present)
    query = cfg.objective.query()   # how the run's boards score pins (the refinement trained with it)
    return emb, (EmbeddingScorer(emb, query, cfg.objective.board_query_tau) if query != "centroid" else None), cm


FAMILY_RUNNERS: dict[str, Callable[[ModelKind, RunContext, int, DataSplit],
                                   tuple[Tensor | None, Scorer | None, CrossModal | None]]] = {
    "trained": _run_trained,
    "scorer": lambda kind, ctx, seed, split: (None, kind.make_scorer(seed, **(ctx.option(kind.name) or {})), None),
    "embedding": lambda kind, ctx, seed, split: (kind.build(ctx, seed, split), None, None),
}


def _skips(models: list[str], graph: PinBoardGraph) -> dict[str, str]:
    """model -> why it cannot run (a missing package, no text, a skipped base model)."""
    skipped: dict[str, str] = {}
    has_text = bool(graph.features("pin").names("text"))
    for m in models:
        base = _hybrid_base(m)
        kind = MODEL_KINDS.get(m) if base is None else None
        why = kind.why_unavailable() if kind is not None else None
        if why:
            skipped[m] = why
        elif (base or kind.needs_text) and not has_text:
            skipped[m] = "the pins have no text feature"
        elif base in skipped:
            skipped[m] = f"its base model {base!r} is skipped"
        if m in skipped:
            log.warning("skipping the %s model: %s", m, skipped[m])
    return skipped


def run_experiment(graph: PinBoardGraph, models: Sequence[str], seeds: Sequence[int],
                   make_config: MakeConfig | None = None, holdout: float = 0.2, cold: float = 0.1,
                   split_fn: SplitFn | None = None, ks: tuple[int, ...] = CURVE_KS,
                   pinsage: PinSageConfig | None = None,
                   keep_embeddings: bool = True, lexical_weight: float = 0.5,
                   label: str | None = None) -> Experiment:
    """Run every model of ``models`` on one split per seed and score board completion.

    Args:
        graph: the full graph.
        models: names of :data:`~boardgraph.models.MODEL_KINDS`; trained kinds and baselines mix
            freely. ``"<m>+tfidf"`` (after ``m`` in the list) scores the hybrid of ``m``'s embeddings
            with TF-IDF vectors of the pins' text (:func:`~boardgraph.inference.lexical.hybrid_embeddings`),
            at no extra training.
        seeds: one split (and one training seed) per seed.
        make_config: ``(kind, seed) -> TrainConfig`` for the trained kinds; ``towers`` and
            ``pinsage`` take their frozen content features (:func:`~boardgraph.evaluation.baselines.tower_features`)
            from the towers of ``make_config("content", seed)``, sharing its feature cache. Give each
            seed its own ``run.out_dir`` (a shared one is safe but rebuilds feature caches).
        holdout, cold: fractions for :func:`~boardgraph.evaluation.splits.split_memberships` (seeded by the seed).
        split_fn: ``(graph, seed) -> DataSplit`` instead (custom protocols, e.g. twins kept together).
        ks: cut-offs of the metrics (the table needs 10 and 50).
        pinsage: a :class:`~boardgraph.evaluation.baselines.PinSageConfig` (its seed is replaced by each seed).
        keep_embeddings: keep each model's pin embeddings in its :class:`ModelRun`.
        lexical_weight: weight of the TF-IDF cosine in the hybrids (0.5: as much as the learned one).
        label: a feature that boards and pins both carry (e.g. ``"style"``): also score
            ``label_precision@K``, the share of a query's top K whose label is the board's
            (:func:`~boardgraph.evaluation.completion.label_precision`; not capped like Recall@K).

    Returns:
        An :class:`Experiment`. A model that cannot run here (``minilm`` without its package, a
        text model on pins without text, a hybrid of a skipped model) is skipped, with the reason
        in :attr:`Experiment.skipped`.

    Raises:
        ValueError: an unknown model name (:func:`check_models`), ``lexical_weight`` outside
            ``[0, 1]``, or a model that needs ``make_config`` without it.
        ConfigError: ``make_config(kind, seed)`` returns a config of another kind.
        KeyError: ``label`` is not a feature of both the boards and the pins.
    """
    models = check_models(models)
    labels = matching_labels(graph, label) if label is not None else None
    if not 0.0 <= lexical_weight <= 1.0:  # checked before any training, not when the first hybrid is built
        raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
    needs_config = [m for m in models if not _hybrid_base(m) and MODEL_KINDS.get(m).needs_config]
    if needs_config and make_config is None:
        raise ValueError(f"models {needs_config} need make_config=(kind, seed) -> TrainConfig")
    exp = Experiment(models=[], seeds=list(seeds), skipped=_skips(models, graph))
    exp.models = [m for m in models if m not in exp.skipped]
    ctx = RunContext(make_config, {"pinsage": pinsage})
    for seed in exp.seeds:
        split = split_fn(graph, seed) if split_fn is not None else split_memberships(graph, holdout, cold, seed=seed)
        exp.splits[seed] = split
        embeddings: dict[str, Tensor] = {}  # this seed's embeddings, for the hybrids
        for model in exp.models:
            t0 = time.perf_counter()
            if (base := _hybrid_base(model)) is not None:
                emb, scorer, cm = hybrid_embeddings(embeddings[base], ctx.tfidf(split), lexical_weight), None, None
            else:
                kind = MODEL_KINDS.get(model)
                emb, scorer, cm = FAMILY_RUNNERS[kind.family](kind, ctx, seed, split)
            if emb is not None:
                embeddings[model] = emb
            completion = _score(scorer if scorer is not None else emb, split, ks, seed, labels)
            secs = time.perf_counter() - t0
            exp.runs[(model, seed)] = ModelRun(model, seed, completion, secs, emb if keep_embeddings else None, cm,
                                               scorer if emb is not None and keep_embeddings else None)
            s = completion.summary()
            log.info("seed %d %-10s warm R@10 %.3f cold R@10 %.3f (%.0f s)", seed, model,
                     s.get("warm_recall@10", math.nan), s.get("cold_recall@10", math.nan), secs)
    return exp


def _score(model: Tensor | Scorer, split: DataSplit, ks: tuple[int, ...], seed: int,
           labels: tuple[Tensor, Tensor] | None = None) -> BoardCompletion:
    """Board completion of ``model``; an error when no query could be scored."""
    completion = board_completion(model, split, ks=ks, labels=labels)
    if not any(completion.metrics(g)[f"recall@{ks[0]}"].n_scored for g in GROUPS):
        g = split.graph
        raise MetricInputError(
            f"seed {seed}: no board has a held-out pin to rank (the graph has {g.num_nodes('pin')} "
            f"pins, {g.num_nodes('board')} boards and {g.num_edges(MEMBER)} "
            f"memberships; a held-out pin needs another membership, and its board another pin); use a "
            f"larger graph or larger hold-out fractions")
    return completion


def compare_models(split: DataSplit, models: Sequence[str], make_config: Callable[[str], TrainConfig],
                   seed: int = 0, **kwargs) -> Experiment:
    """:func:`run_experiment` on one given split: ``make_config(kind)`` for each trained kind."""
    return run_experiment(split.graph, models, [seed], lambda kind, _s: make_config(kind),
                          split_fn=lambda _g, _s: split, **kwargs)
