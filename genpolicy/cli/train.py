"""``genpolicy train ALGO``: resolve the config, protect the run folder, preflight, train, and on SIGINT/SIGTERM
checkpoint and print the command that resumes."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from ..config import add_dataclass_args, load_presets, resolve_config, to_yaml

RUN_FILES = ("checkpoint.pt", "config.yaml", "metrics.jsonl")


def _argv_presets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--preset"]


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    from ..rl.algos import ALGORITHMS

    train = sub.add_parser(name, help=text, description=text)
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO")
    chosen = next((a for a in argv if a in ALGORITHMS), None)
    for algo, cls in sorted(ALGORITHMS.items()):
        presets = load_presets(algo)
        shown, note = None, ""
        if algo == chosen and _argv_presets(argv):
            try:  # --help shows the defaults with the presets given on the command line applied
                shown = resolve_config(cls.Config, _argv_presets(argv), presets, {}, [])
                note = f" Defaults shown include the presets {', '.join(_argv_presets(argv))}."
            except ValueError:
                shown = None
        doc = (cls.__doc__ or "").replace("``", "").strip().splitlines()[0]
        p = algos.add_parser(algo, help=doc, description=f"Train {algo}: {doc} Every config field is a flag; "
                                                         f"presets: {', '.join(sorted(presets)) or 'none'}.{note}")
        p.add_argument("--dataset", help="dataset file/folder, minari:ID, or a suite name (genpolicy datasets)")
        p.add_argument("--env", default=None, help="Gymnasium env id for evaluation (e.g. Hopper-v5); none: no eval")
        p.add_argument("--preset", action="append", default=[], help="preset name (repeatable, applied in order)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
        p.add_argument("--run-dir", default=None, help="output folder (default runs/<algo>-<dataset>-<seed>; if that "
                                                       "exists, a fresh -2, -3, ... suffix)")
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        p.add_argument("--overwrite", action="store_true", help="delete the run in --run-dir and start over")
        p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
        p.add_argument("--no-preflight", dest="preflight", action="store_false",
                       help="skip the seconds-long check of env, sizes, one step per stage and one act()")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        add_dataclass_args(p.add_argument_group("config fields"), cls.Config, dest_prefix="cfg_",
                           suppress_defaults=True, shown=shown)


def _is_run(d: Path) -> bool:
    return any((d / f).exists() for f in RUN_FILES)


def _named_dir(ns, cfg) -> tuple[Path, Path]:
    """(the folder the flags name, the default one: runs/<algo>-<dataset>-<seed>)."""
    default = Path(f"runs/{ns.algo}-{Path(str(ns.dataset)).stem}-{cfg.seed}")
    return (Path(ns.run_dir) if ns.run_dir else default), default


def _run_dir(ns, cfg) -> tuple[Path, str]:
    """The folder this command writes to, and a message when it is not the one named by default or flags."""
    if ns.resume and ns.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    d, default = _named_dir(ns, cfg)
    if ns.resume:
        if not (d / "checkpoint.pt").exists():
            raise FileNotFoundError(f"nothing to resume in {d} (no checkpoint.pt)")
        return d, ""
    if not d.exists() or not any(d.iterdir()):
        return d, ""
    if ns.overwrite:
        if not _is_run(d):
            raise ValueError(f"{d} is not a run folder (none of {', '.join(RUN_FILES)}); refusing to delete it")
        return d, f"--overwrite: the run in {d} is deleted and replaced"
    if ns.run_dir:
        raise FileExistsError(f"{d} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                              f"or another --run-dir")
    k = 2
    while Path(f"{default}-{k}").exists():
        k += 1
    return Path(f"{default}-{k}"), f"{default} already holds a run; this one goes to {default}-{k} " \
                                   f"(--resume continues the old one, --overwrite replaces it)"


def _resolve(ns, cls):
    """The config this command runs: defaults < presets < flags < --set; for --resume, the run's own config with
    those applied on top, refused (before any data is loaded) unless every change is safe for a resumed run."""
    flags = {k[4:]: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items() if k.startswith("cfg_")}
    cfg = resolve_config(cls, ns.preset, load_presets(ns.algo), flags, ns.set)
    if not ns.resume:
        return cfg
    from ..config import check_resume_changes
    from ..train import run_config

    base = run_config(_named_dir(ns, cfg)[0], ns.algo, device=cfg.device)
    cfg = resolve_config(cls, ns.preset, load_presets(ns.algo), flags, ns.set, base=base)
    check_resume_changes(base, cfg)
    return cfg


def run(ns) -> int:
    from ..rl.algos import ALGORITHMS

    cls = ALGORITHMS[ns.algo].Config
    cfg = _resolve(ns, cls)
    if ns.print_config:
        print(to_yaml(cfg), end="")
        return 0
    if not ns.dataset:
        raise ValueError("--dataset is required (a file, minari:ID, or a name from 'genpolicy datasets')")
    run_dir, note = _run_dir(ns, cfg)
    return _train(ns, cfg, run_dir, note)


def _train(ns, cfg, run_dir: Path, note: str) -> int:
    from ..preflight import preflight
    from ..train import TrainingInterrupted, prepare_run, train

    algo, data = prepare_run(ns.algo, cfg, ns.dataset)
    if ns.preflight:
        pf = preflight(algo, data, ns.env)
        print(f"preflight ok ({pf['seconds']:.1f} s): env {ns.env or 'none'}, sizes, one step per stage, act()",
              file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    if ns.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    meta = {"dataset": str(ns.dataset), "presets": list(ns.preset), "command": " ".join(sys.argv)}
    try:
        summary = train(algo, data, run_dir, env_id=ns.env, meta=meta, resume=ns.resume, progress=ns.progress)
    except TrainingInterrupted as e:
        cmd = ["genpolicy", "train", ns.algo, "--dataset", str(ns.dataset), "--run-dir", str(run_dir), "--resume"]
        cmd += ["--env", ns.env] if ns.env else []
        print(f"\n{e}\nresume with: {' '.join(cmd)}", file=sys.stderr)
        return 128 + e.signum if e.signum in (signal.SIGINT, signal.SIGTERM) else 1
    print(f"run: {run_dir}")
    for name, t in summary["stage_times"].items():
        rate = f"{t['steps_per_s']:8.1f}" if t["steps_per_s"] is not None else "       -"
        print(f"  {name:10s} {t['seconds']:8.1f} s  {rate} steps/s  (first step {t['first_step_seconds']:.2f} s)")
    if summary["final_score"] is not None:
        print(f"  final score {summary['final_score']:.1f}   best score {summary['best_score']:.1f} "
              f"at {summary['best_at']}")
    return 0
