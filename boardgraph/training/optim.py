"""The trainer's optimizer and learning-rate schedule: AdamW over parameter groups (weight decay
on matrices only; unfrozen towers and the ID table at their own learning rates), linear warmup
then cosine decay."""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from boardgraph.training.config import OptimConfig

__all__ = ["param_groups", "lr_factor", "build_optimizer"]


def param_groups(model: nn.Module, o: OptimConfig) -> list[dict]:
    """AdamW groups of ``model``'s trainable parameters (a :class:`~boardgraph.objectives.PinCLIPModel`):
    decay on tensors of 2+ dims only; unfrozen towers at ``lr * tower_lr_scale``; the encoder's ID
    table, if any, at ``lr * id_lr_scale`` without decay (a row moves only when its pin is in a
    batch). Empty groups are left out."""
    tower_ids = {id(p) for p in model.encoder.towers.parameters()}
    id_table = model.encoder.ids.weight if model.encoder.ids is not None else None
    groups = []
    for towers, lr in ((False, o.lr), (True, o.lr * o.tower_lr_scale)):
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in tower_ids) == towers
                  and p is not id_table]
        groups += [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay, "lr": lr},
                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr": lr}]
    if id_table is not None:
        groups.append({"params": [id_table], "weight_decay": 0.0, "lr": o.lr * o.id_lr_scale})
    return [g for g in groups if g["params"]]


def lr_factor(step: int, o: OptimConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step``: linear warmup over ``warmup_steps``, then
    cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    t = (step - o.warmup_steps) / max(1, total_steps - o.warmup_steps)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def build_optimizer(model: nn.Module, o: OptimConfig, total_steps: int
                    ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """``(AdamW over param_groups(model, o), its LambdaLR schedule of lr_factor)``."""
    opt = torch.optim.AdamW(param_groups(model, o), lr=o.lr, betas=tuple(o.betas))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, o=o, total_steps=total_steps))
