"""``genpolicy eval PATH``: seeded evaluation of a run (best or final checkpoint) or an exported policy file."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    ev = sub.add_parser(name, help=text, description=text + ". The same checkpoint and --seed give the same returns.")
    ev.add_argument("path", help="run folder, checkpoint file (.pt) or exported policy (.safetensors)")
    ev.add_argument("--checkpoint", default="best",
                    help="in a run folder: best (best.pt, else checkpoint.pt), final (checkpoint.pt) or a file name")
    ev.add_argument("--episodes", type=int, default=10, help="number of episodes")
    ev.add_argument("--env", default=None, help="environment id (default: the one the run was trained with)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the first episode and of the policy's noise")
    ev.add_argument("--out", default=None, help="also write the result JSON here")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change how actions are drawn (act_steps, act_solver, act_temperature and the algorithm's "
                         "own act-time fields such as num_samples or guidance_scale); recorded in the result")


def _position(file: Path) -> tuple[str | None, int, int]:
    """(env, stage index, step) recorded in a checkpoint or exported policy."""
    if file.suffix == ".safetensors":
        from ..export import read_exported

        header = read_exported(file)[0]
        return header.get("env"), header["stage"], header["step"]
    from ..train import load_checkpoint

    ck = load_checkpoint(file)
    return ck["meta"].get("env"), ck["stage"], ck["step"]


def act_overrides(policy, sets: list[str]) -> dict:
    """Apply ``KEY=VALUE`` changes of act-time fields to a loaded policy's config (a one-line error for any other
    field: those would not match the trained weights); returns the changes."""
    from ..config import _class_union, resolve_config

    if not sets:
        return {}
    cls = type(policy.cfg)
    allowed = _class_union(cls, "act_fields")
    keys = [s.split("=", 1)[0].strip() for s in sets]
    bad = [k for k in keys if k not in allowed]
    if bad:
        raise ValueError(f"--set {bad}: only act-time fields can change at evaluation: {sorted(allowed)}")
    policy.cfg = resolve_config(cls, [], {}, {}, sets, base=policy.cfg)  # checked like any config
    return {k: getattr(policy.cfg, k) for k in keys}


def run(ns) -> int:
    from ..policy import load_policy, pick_checkpoint, progress_of
    from ..rl.evaluate import evaluate, score_definition
    from ..preflight import env_observation
    from ..train import CHECKPOINT

    if ns.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {ns.episodes}")
    file, why = pick_checkpoint(ns.path, ns.checkpoint)
    env_id, stage, step = _position(file)
    env_id = ns.env or env_id
    if not env_id:
        raise ValueError(f"{file} names no environment; pass --env")
    policy = load_policy(file)
    changes = act_overrides(policy, ns.set)
    final = Path(ns.path) / CHECKPOINT if Path(ns.path).is_dir() else file  # the run's progress is the final state's
    if final != file and final.exists():
        stage, step = _position(final)[1:]
    done, total = progress_of(policy, stage, step)
    env_observation(env_id, policy.obs_dim, policy.act_dim, "the policy")  # preflight: the env exists and fits
    print(f"evaluating {file} ({why}) on {env_id}, {ns.episodes} episodes, seed {ns.seed}", file=sys.stderr)
    if done < total:
        print(f"warning: the run is unfinished ({done} of {total} steps); this scores a policy from mid-training",
              file=sys.stderr)
    res = evaluate(policy.act, env_id, episodes=ns.episodes, seed=ns.seed, policy_seed=ns.seed)
    out = {"env": env_id, "checkpoint": str(file), "selected": why, "seed": ns.seed, "act_overrides": changes,
           "run_steps_done": done,
           "run_steps_planned": total, **res.as_dict(), "returns": [round(float(r), 4) for r in res.returns],
           "score_definition": score_definition(env_id)}
    text = json.dumps(out, indent=2)
    print(text)
    if ns.out:
        Path(ns.out).write_text(text + "\n")
    return 0
