"""Command line: ``genpolicy train | eval | toy``.

    genpolicy train gmpo --dataset hopper-medium-replay-v5 --env Hopper-v5 --preset cpu --set beta=6
    genpolicy eval runs/gmpo/best.pt --episodes 10

Configuration precedence: dataclass defaults < presets (in the order given) < ``--FIELD`` flags < ``--set``
(:func:`genpolicy.config.resolve_config`); the run is set up by :func:`genpolicy.train.prepare_run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import add_dataclass_args, dataclass_from_args, load_presets, resolve_config

__all__ = ["main", "build_parser"]


def _add_train_parser(sub) -> None:
    from .rl.algos import ALGORITHMS

    train = sub.add_parser("train", help="train an offline-RL algorithm on a dataset")
    algos = train.add_subparsers(dest="algo", required=True)
    for name, cls in sorted(ALGORITHMS.items()):
        p = algos.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0],
                             description=f"Train {name}. Every config field is a flag; presets: "
                                         f"{', '.join(sorted(load_presets(name))) or 'none'}.")
        p.add_argument("--dataset", required=True, help="dataset file/folder, minari:ID, or a suite name")
        p.add_argument("--env", default=None, help="Gymnasium env id for evaluation (e.g. Hopper-v5); none: no eval")
        p.add_argument("--preset", action="append", default=[], help="preset name (repeatable, applied in order)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
        p.add_argument("--run-dir", default=None, help="output folder (default runs/<algo>-<dataset>-<seed>)")
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        add_dataclass_args(p.add_argument_group("config fields"), cls.Config, dest_prefix="cfg_",
                           suppress_defaults=True)


def _cmd_train(ns) -> int:
    from .rl.algos import ALGORITHMS
    from .train import prepare_run, train

    cls = ALGORITHMS[ns.algo].Config
    flags = {k[4:]: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items() if k.startswith("cfg_")}
    cfg = resolve_config(cls, ns.preset, load_presets(ns.algo), flags, ns.set)
    run_dir = Path(ns.run_dir or f"runs/{ns.algo}-{Path(str(ns.dataset)).stem}-{cfg.seed}")
    # a resumed run keeps the config it was started with
    algo, data = prepare_run(ns.algo, cfg, ns.dataset, resume_dir=run_dir if ns.resume else None)
    meta = {"dataset": str(ns.dataset), "presets": list(ns.preset), "command": " ".join(sys.argv)}
    summary = train(algo, data, run_dir, env_id=ns.env, meta=meta, resume=ns.resume, progress=ns.progress)
    print(f"run: {run_dir}")
    for name, t in summary["stage_times"].items():
        print(f"  {name:10s} {t['seconds']:8.1f} s  {t['steps_per_s']:8.1f} steps/s")
    if summary["final_score"] is not None:
        print(f"  final score {summary['final_score']:.1f}   best score {summary['best_score']:.1f} at {summary['best_at']}")
    return 0


def _add_data_parser(sub) -> None:
    from .datagen.make import ENVS, LEVELS, MakeConfig
    from .datagen.sac import SACConfig

    data = sub.add_parser("data", help="make D4RL-style datasets from MuJoCo")
    dsub = data.add_subparsers(dest="data_command", required=True)
    mk = dsub.add_parser("make", help="make one dataset file (+ data card)")
    mk.add_argument("env", choices=sorted(ENVS))
    mk.add_argument("level", choices=LEVELS)
    mk.add_argument("--no-progress", dest="progress", action="store_false")
    add_dataclass_args(mk, MakeConfig)
    bh = dsub.add_parser("behaviour", help="train (or resume) the SAC behaviour agent of an env")
    bh.add_argument("env", choices=sorted(ENVS))
    bh.add_argument("--root", default="datasets/behaviour", help="behaviour agents live in ROOT/ENV")
    bh.add_argument("--no-progress", dest="progress", action="store_false")
    bh.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    add_dataclass_args(bh, SACConfig)
    cv = dsub.add_parser("curves", help="plot the behaviour agents' snapshot returns and the medium/expert picks")
    cv.add_argument("--out-png", default="datasets/behaviour_curves.png")
    cv.add_argument("envs", nargs="*", help="short env names (default: every agent found)")
    add_dataclass_args(cv, MakeConfig)


def _cmd_data(ns) -> int:
    import json

    from .datagen.make import ENVS, MakeConfig, make_dataset
    from .datagen.sac import SACConfig, train_sac

    if ns.data_command == "curves":
        from .datagen.make import plot_behaviour_curves

        print(plot_behaviour_curves(dataclass_from_args(MakeConfig, ns), ns.out_png, ns.envs or None))
        return 0
    if ns.data_command == "make":
        cfg = dataclass_from_args(MakeConfig, ns)
        card = make_dataset(ns.env, ns.level, cfg, progress=ns.progress, command=" ".join(["genpolicy"] + sys.argv[1:]))
        print(json.dumps(card, indent=2))
        return 0
    cfg = dataclass_from_args(SACConfig, ns)
    hist = train_sac(ENVS[ns.env], Path(ns.root) / ns.env, cfg, progress=ns.progress, resume=not ns.fresh)
    print(json.dumps({"env": ns.env, "eval_returns": hist}, indent=1))
    return 0


def _cmd_eval(ns) -> int:
    import json

    from .policy import load_policy
    from .rl.evaluate import evaluate
    from .train import load_checkpoint

    path = Path(ns.checkpoint)
    env_id = ns.env
    if env_id is None:
        ck = load_checkpoint(path if path.is_file() else path / "checkpoint.pt")
        env_id = ck["meta"].get("env")
        if not env_id:
            raise ValueError("the checkpoint names no environment; pass --env")
    policy = load_policy(path)
    res = evaluate(policy.act, env_id, episodes=ns.episodes, seed=ns.seed)
    print(json.dumps({"env": env_id, **res.as_dict()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .demos.toy import ToyConfig

    parser = argparse.ArgumentParser(prog="genpolicy", description="Generative policies for offline RL.")
    sub = parser.add_subparsers(dest="command", required=True)
    toy = sub.add_parser("toy", help="Swiss-roll demo: train every path, plot, report held-out log-likelihoods")
    add_dataclass_args(toy, ToyConfig)
    _add_train_parser(sub)
    _add_data_parser(sub)
    ev = sub.add_parser("eval", help="evaluate a checkpoint in its environment")
    ev.add_argument("checkpoint", help="checkpoint.pt, best.pt, or a run folder")
    ev.add_argument("--episodes", type=int, default=10, help="number of episodes")
    ev.add_argument("--env", default=None, help="environment id (default: the one the run was trained with)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    return parser


def _cmd_toy(ns) -> int:
    from .demos.toy import ToyConfig, format_table, run_toy

    cfg = dataclass_from_args(ToyConfig, ns)
    results = run_toy(cfg)
    print(format_table(results))
    print(f"wall time {results['wall_seconds']:.1f} s; plots and results.json in {cfg.out}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return {"toy": _cmd_toy, "train": _cmd_train, "eval": _cmd_eval, "data": _cmd_data}[ns.command](ns)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"genpolicy {ns.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
