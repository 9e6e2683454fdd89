"""Tiny budgets for tests: any registered algorithm's config at a few steps and small networks."""

from __future__ import annotations

import dataclasses

from genpolicy.config import apply_overrides, _coerce
from genpolicy.rl.algos import algorithm_class

TINY_EVERY = {
    "critic_steps": 3, "policy_steps": 3, "behaviour_steps": 3, "steps": 3, "eval_every": 0,
    "final_eval_episodes": 1, "act_steps": 2, "num_samples": 2, "support_samples": 2, "net": "mlp",
    "net_hidden": "[16,16]", "critic_hidden": "[16,16]", "actor_hidden": "[16,16]", "flow_hidden": "[16,16]",
    "energy_hidden": "[16,16]", "hidden": "[16,16]", "batch_size": 16, "flow_steps": 2, "train_steps": 2,
    "policy_batch_size": 8}


def tiny_config(name: str, **replace):
    cls = algorithm_class(name).Config
    fields = {f.name for f in dataclasses.fields(cls)}
    cfg = apply_overrides(cls(), {k: _coerce(cls, k, str(v)) for k, v in TINY_EVERY.items() if k in fields})
    return dataclasses.replace(cfg, **replace)
