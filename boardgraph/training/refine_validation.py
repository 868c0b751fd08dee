"""How long ``neighbor_cf`` refines its IDs: chosen on validation memberships that no training
phase has seen, by a copy of the run (:func:`choose_refine_epochs`; the refinement itself is
:mod:`boardgraph.training.refine`)."""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import torch.distributed as dist
from torch import Tensor

from boardgraph.evaluation.splits import split_memberships
from boardgraph.graph import MEMBER, PinBoardGraph
from boardgraph.inference.board_query import BOARD_QUERIES
from boardgraph.training.refine import RefineStats, refine_ids, refine_settings

__all__ = ["choose_refine_epochs", "phase_one_graph"]

log = logging.getLogger(__name__)


def phase_one_graph(train_graph: PinBoardGraph, fraction: float,
                    seed: int) -> tuple[PinBoardGraph, tuple[Tensor, Tensor]]:
    """``(graph, held_out)``: ``train_graph`` without ``fraction`` of its memberships
    (:func:`~boardgraph.evaluation.splits.split_memberships`, seeded), and those memberships
    ``(pins, boards)``: the validation memberships of :func:`choose_refine_epochs`."""
    val = split_memberships(train_graph, fraction, 0.0, seed=seed)
    return val.train_graph, val.heldout


def _share_feature_cache(src: Path, dst: Path) -> None:
    """Hard-link (else copy) the run's feature cache ``src`` into ``dst``, so a copy of the run
    does not encode the pins' towers again."""
    if src.is_dir() and not dst.exists():
        try:
            shutil.copytree(src, dst, copy_function=os.link)
        except OSError:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)


def _on_rank0(fn: Callable[[], None]) -> None:
    """``fn()`` on rank 0 only, between barriers when torch.distributed runs (every rank calls this)."""
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()
    if not distributed or dist.get_rank() == 0:
        fn()
    if distributed:
        dist.barrier()


def choose_refine_epochs(trainer_cls, run) -> RefineStats:
    """The refinement length for the trained run ``run`` (a :class:`~boardgraph.training.Trainer`),
    chosen on validation memberships that no phase has seen.

    A copy of the run (``trainer_cls``, same config and seed, in ``<out_dir>/refine_validation``,
    removed afterwards) trains its first phase without ``optim.refine_val_fraction`` of the
    training memberships (:func:`phase_one_graph`); :func:`refine_ids` then measures their
    Recall@10 before refining the copy's IDs and every 5 epochs up to ``optim.refine_epochs``. The
    returned stats' ``epochs`` is the shortest length within one standard error of the best (0: do
    not refine; small validation sets, as on curated bundles, then refine only for a clear gain).
    With ``objective.board_query: auto`` (``neighbor_cf``'s default) this is done with each board query
    (:data:`~boardgraph.inference.board_query.BOARD_QUERIES`), and the stats of the one whose
    chosen length has the best validation Recall@10 are returned (``query`` names it). Costs a
    second first phase; holding the memberships out of the run itself would cost it data instead
    (measured on Steam: warm Recall@10 -0.025 [-0.040, -0.011], 3 seeds).
    """
    cfg, split, o = run.cfg, run.split, run.cfg.optim
    fit, held = phase_one_graph(split.train_graph, o.refine_val_fraction, cfg.run.seed)
    child_cfg = copy.deepcopy(cfg)
    child_cfg.optim.refine_epochs = 0                     # the copy does not refine itself
    out = Path(cfg.run.out_dir) / "refine_validation"
    child_cfg.run.out_dir, child_cfg.run.tensorboard = str(out), False
    _on_rank0(lambda: _share_feature_cache(Path(cfg.run.out_dir) / "feature_cache", out / "feature_cache"))
    try:
        child = trainer_cls(child_cfg, split=dataclasses.replace(split, train_graph=fit), progress=False)
        child.model.encoder.set_warm_ids(split.train_graph.degree(MEMBER) > 0)   # the run's warm pins
        child.fit()
        enc, content = child.model.encoder, child.content_vectors()
        queries = BOARD_QUERIES if cfg.objective.query_setting() == "auto" else (cfg.objective.query(),)
        tried = [refine_ids(enc.ids, enc.id_warm, content, split.train_graph, epochs=o.refine_epochs, held_out=held,
                            seed=cfg.run.seed, refit=False, **{**refine_settings(cfg), "query": q}) for q in queries]
    finally:
        _on_rank0(lambda: shutil.rmtree(out, ignore_errors=True))
    for st in tried:
        log.info("refinement length with %s board queries: %d epochs (validation Recall@10 by epochs: %s)",
                 st.query, st.epochs, ", ".join(f"{e}: {r:.4f}" for e, r in st.validation.items()))
    # "auto": the query whose chosen length validates best (on a tie, the first of BOARD_QUERIES)
    return max(tried, key=lambda st: st.validation.get(st.epochs, 0.0))
