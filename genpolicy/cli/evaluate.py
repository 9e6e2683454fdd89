"""``genpolicy eval PATH``: seeded evaluation of a run (best or final checkpoint) or an exported policy file; of a
folder of seeds' runs (``seed-K/``, as ``genpolicy train --seeds`` and ``genpolicy bench`` write them), every seed's
policy on the same episodes, in one vector env, with the mean and standard error over seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    ev = sub.add_parser(name, help=text, description=text + ". The same checkpoint and --seed give the same returns.")
    ev.add_argument("path", help="run folder, checkpoint file (.pt), exported policy (.safetensors), or a folder of "
                                 "seeds' run folders (seed-K/: every seed, mean +- s.e. over seeds)")
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
    from ..config import class_union, resolve_config

    if not sets:
        return {}
    cls = type(policy.cfg)
    allowed = class_union(cls, "act_fields")
    keys = [s.split("=", 1)[0].strip() for s in sets]
    bad = [k for k in keys if k not in allowed]
    if bad:
        raise ValueError(f"--set {bad}: only act-time fields can change at evaluation: {sorted(allowed)}")
    policy.cfg = resolve_config(cls, [], {}, {}, sets, base=policy.cfg)  # checked like any config
    return {k: getattr(policy.cfg, k) for k in keys}


def _load(path, ns) -> dict:
    """The policy to evaluate from ``path`` and what the result records about it (checkpoint, why, env, progress)."""
    from ..policy import load_policy, pick_checkpoint, progress_of
    from ..train import CHECKPOINT

    file, why = pick_checkpoint(path, ns.checkpoint)
    env_id, stage, step = _position(file)
    env_id = ns.env or env_id
    if not env_id:
        raise ValueError(f"{file} names no environment; pass --env")
    policy = load_policy(file)
    changes = act_overrides(policy, ns.set)
    final = Path(path) / CHECKPOINT if Path(path).is_dir() else file  # the run's progress is the final state's
    if final != file and final.exists():
        stage, step = _position(final)[1:]
    done, total = progress_of(policy, stage, step)
    return {"policy": policy, "file": file, "why": why, "env": env_id, "changes": changes, "done": done,
            "total": total}


def run(ns) -> int:
    import numpy as np

    from .. import plotting
    from ..preflight import env_observation
    from ..rl.evaluate import evaluate_many, score_definition

    if ns.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {ns.episodes}")
    seed_runs = plotting.seed_runs(ns.path)
    loaded = [_load(d, ns) for d in seed_runs] if seed_runs else [_load(ns.path, ns)]
    envs = {x["env"] for x in loaded}
    if len(envs) > 1:
        raise ValueError(f"the seeds' runs in {ns.path} were trained with different environments ({sorted(envs)}); "
                         f"pass --env")
    env_id = envs.pop()
    for x in loaded:  # preflight: the env exists and fits every policy
        env_observation(env_id, x["policy"].obs_dim, x["policy"].act_dim, "the policy")
    what = f"{len(loaded)} seeds' runs in {ns.path}" if seed_runs else f"{loaded[0]['file']} ({loaded[0]['why']})"
    print(f"evaluating {what} on {env_id}, {ns.episodes} episodes, seed {ns.seed}", file=sys.stderr)
    for x, d in zip(loaded, seed_runs or [None]):
        if x["done"] < x["total"]:
            which = f"the run in {d}" if d is not None else "the run"
            print(f"warning: {which} is unfinished ({x['done']} of {x['total']} steps); this scores a policy from "
                  f"mid-training", file=sys.stderr)
    # every policy on the same episodes (start states) and the same noise seed, as `genpolicy eval RUN` gives each
    results = evaluate_many([x["policy"].act for x in loaded], env_id, episodes=ns.episodes,
                            seeds=[ns.seed] * len(loaded), policy_seeds=[ns.seed] * len(loaded))
    outs = [{"env": env_id, "checkpoint": str(x["file"]), "selected": x["why"], "seed": ns.seed,
             "act_overrides": x["changes"], "run_steps_done": x["done"], "run_steps_planned": x["total"],
             **res.as_dict(), "returns": [round(float(r), 4) for r in res.returns],
             "score_definition": score_definition(env_id)} for x, res in zip(loaded, results)]
    if seed_runs:
        scores = np.array([r.score for r in results])
        out = {"env": env_id, "runs": str(ns.path), "seeds": [int(d.name[5:]) for d in seed_runs],
               "score_mean": float(scores.mean()),
               "score_se": float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else None,
               "scores": [round(float(x), 4) for x in scores], "per_run": outs}
    else:
        out = outs[0]
    from ..train import software

    out["software"] = software()  # what scored it (a score can differ under other mujoco or CPU)
    text = json.dumps(out, indent=2)
    print(text)
    if ns.out:
        Path(ns.out).write_text(text + "\n")
    return 0
