"""``genpolicy train ALGO``: resolve the config, protect the run folder, preflight, train, and on SIGINT/SIGTERM
checkpoint and print the command that resumes. ``--seeds 0-7``: several seeds in one process, trained as one
vectorized model wherever a stage has one (:func:`genpolicy.train.train_stacked`), each in its own run folder."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from ..config import add_dataclass_args, load_presets, resolve_config, to_yaml


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
        p.add_argument("--seeds", nargs="+", type=_seed_spec, default=None, metavar="SEEDS",
                       help="train several seeds at once (e.g. 0-7, or 0 3 5) as one vectorized model wherever a "
                            "stage has one; seed K's run goes to RUN_DIR/seed-K (default RUN_DIR: "
                            "runs/<algo>-<dataset>-seeds) and equals its single run")
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
        p.add_argument("--overwrite", action="store_true", help="delete the run in --run-dir and start over")
        p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
        p.add_argument("--no-preflight", dest="preflight", action="store_false",
                       help="skip the seconds-long check of env, sizes, one step per stage and one act()")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        add_dataclass_args(p.add_argument_group("config fields"), cls.Config, dest_prefix="cfg_",
                           suppress_defaults=True, shown=shown)


def _seed_spec(text: str) -> list[int]:
    """``"3"`` -> [3]; ``"0-7"`` -> [0, ..., 7]; ``"0,2,5"`` -> [0, 2, 5] (ranges allowed between commas)."""
    import argparse

    out = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a seed, range or list of seeds: {text!r} (e.g. 3, 0-7, 0,2,5)")
        if dash and int(hi) < int(lo):
            raise argparse.ArgumentTypeError(f"empty seed range {part!r}")
    return out


def _is_run(d: Path) -> bool:
    from ..train.rundir import is_run_folder

    return is_run_folder(d)


def _named_dir(ns, cfg) -> tuple[Path, Path]:
    """(the folder the flags name, the default one: runs/<algo>-<dataset>-<seed>)."""
    default = Path(f"runs/{ns.algo}-{Path(str(ns.dataset)).stem}-{cfg.seed}")
    return (Path(ns.run_dir) if ns.run_dir else default), default


def _check_folder(ns, d: Path) -> str:
    """What this command may do with run folder ``d``, or a one-line error: resume it (it needs its checkpoint),
    replace it (--overwrite: only a run folder), or write a new run (only into an empty or new folder). Returns the
    message an --overwrite prints."""
    from ..train.lock import check_not_locked

    check_not_locked(d)  # a folder another process is writing: say so first
    if ns.resume:
        if not (d / "checkpoint.pt").exists():
            if _is_run(d):  # it started and stopped before its first checkpoint
                raise FileNotFoundError(f"{d} holds a run that stopped before its first checkpoint: nothing to "
                                        f"resume; pass --overwrite to start it again")
            raise FileNotFoundError(f"nothing to resume in {d} (no checkpoint.pt)")
        return ""
    if not d.exists() or not any(d.iterdir()):
        return ""
    if ns.overwrite:
        if not _is_run(d):
            raise ValueError(f"{d} is not a run folder (no checkpoint.pt, config.yaml or metrics.jsonl); refusing to "
                             f"delete anything in it")
        return f"--overwrite: the run in {d} is deleted and replaced"
    if not (d / "checkpoint.pt").exists() and _is_run(d):
        raise FileExistsError(f"{d} holds a run that stopped before its first checkpoint (nothing to resume); pass "
                              f"--overwrite to start it again, or another --run-dir")
    raise FileExistsError(f"{d} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                          f"or another --run-dir")


def _free(default: Path, taken) -> Path:
    """``default-2``, ``default-3``, ...: the first that is not ``taken``."""
    k = 2
    while taken(Path(f"{default}-{k}")):
        k += 1
    return Path(f"{default}-{k}")


def _run_dir(ns, cfg) -> tuple[Path, str]:
    """The folder this command writes to, and a message when it is not the one named by default or flags."""
    if ns.resume and ns.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    d, default = _named_dir(ns, cfg)
    if ns.run_dir or ns.resume or ns.overwrite or not d.exists() or not any(d.iterdir()):
        return d, _check_folder(ns, d)
    new = _free(default, Path.exists)
    return new, f"{default} already holds a run; this one goes to {new} (--resume continues the old one, " \
                f"--overwrite replaces it)"


def _resolve(ns, cls, seed: int | None = None, run_dir: Path | None = None):
    """The config this command runs: defaults < presets < flags < --set (< ``seed``, one of ``--seeds``); for
    --resume, the run's own config (in ``run_dir``, default the folder the flags name) with those applied on top,
    refused (before any data is loaded) unless every change is safe for a resumed run."""
    flags = {k[4:]: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items() if k.startswith("cfg_")}
    sets = list(ns.set) + ([f"seed={seed}"] if seed is not None else [])
    cfg = resolve_config(cls, ns.preset, load_presets(ns.algo), flags, sets)
    if not ns.resume:
        return cfg
    from ..config import check_resume_changes
    from ..train import run_config
    from ..train.lock import check_not_locked

    where = run_dir or _named_dir(ns, cfg)[0]
    check_not_locked(where)  # a folder another process is writing: say so before what its checkpoint holds
    base = run_config(where, ns.algo, device=cfg.device)
    cfg = resolve_config(cls, ns.preset, load_presets(ns.algo), flags, sets, base=base)
    check_resume_changes(base, cfg)
    return cfg


def run(ns) -> int:
    from ..rl.algos import ALGORITHMS

    cls = ALGORITHMS[ns.algo].Config
    if ns.seeds is not None:
        return _run_seeds(ns, cls, [k for spec in ns.seeds for k in spec])
    cfg = _resolve(ns, cls)
    if ns.print_config:
        print(to_yaml(cfg), end="")
        return 0
    if not ns.dataset:
        raise ValueError("--dataset is required (a file, minari:ID, or a name from 'genpolicy datasets')")
    run_dir, note = _run_dir(ns, cfg)
    return _train(ns, [cfg], [run_dir], note, _resume_cmd(ns, ["--run-dir", str(run_dir)]))


def _train(ns, cfgs: list, dirs: list[Path], note: str, resume_cmd: list[str]) -> int:
    """The one train path: prepare every run (the first preflighted), then train it alone (one run, or a resumed
    seed) or the seeds together (:func:`genpolicy.train.train_stacked`); a signal prints the command that resumes."""
    from ..preflight import preflight
    from ..rl.datasets import load_dataset
    from ..train import TrainingInterrupted, device_rng_state, prepare_run, train, train_stacked
    from ..train.lock import hold_run_folder
    from ..train.rundir import clear_run_folder, is_run_folder

    ds = load_dataset(ns.dataset)
    algos, states = [], []
    for cfg in cfgs:
        algo, data = prepare_run(ns.algo, cfg, ds)
        if ns.preflight and not algos:  # (preflight leaves the random state as it found it)
            pf = preflight(algo, data, ns.env)
            print(f"preflight ok ({pf['seconds']:.1f} s): env {ns.env or 'none'}, sizes, one step per stage, act()",
                  file=sys.stderr)
        algos.append(algo)
        states.append(device_rng_state(data.device))  # the global RNG state its single run would train from
    if note:
        print(note, file=sys.stderr)
    meta = {"dataset": str(ns.dataset), "presets": list(ns.preset), "command": " ".join(sys.argv)}
    try:
        with contextlib.ExitStack() as held:
            for d in dirs:  # every folder locked before anything in it is deleted or written
                held.enter_context(hold_run_folder(d))
            for d in dirs:
                if ns.overwrite and is_run_folder(d):
                    clear_run_folder(d)  # the run's own files only
            if len(algos) == 1:
                summaries = [train(algos[0], data, dirs[0], env_id=ns.env, meta=meta, resume=ns.resume,
                                   progress=ns.progress)]
            else:
                summaries = train_stacked(algos, data, dirs, meta, states, ns.env, ns.progress, resume=ns.resume)
    except TrainingInterrupted as e:
        print(f"\n{e}\nresume with: {' '.join(resume_cmd)}", file=sys.stderr)
        return 128 + e.signum if e.signum in (signal.SIGINT, signal.SIGTERM) else 1
    for d, summary in zip(dirs, summaries):
        _report(d, summary)
    return 0


def _report(run_dir: Path, summary: dict) -> None:
    print(f"run: {run_dir}")
    for name, t in summary["stage_times"].items():
        rate = f"{t['steps_per_s']:8.1f}" if t["steps_per_s"] is not None else "       -"
        first = t["first_step_seconds"]
        how = f"{t['stacked_seeds']} seeds stacked" if t.get("stacked_seeds") else f"first step {first:.2f} s"
        print(f"  {name:10s} {t['seconds']:8.1f} s  {rate} steps/s  ({how})")
    if summary["final_score"] is not None:
        print(f"  final score {summary['final_score']:.1f}   best score {summary['best_score']:.1f} "
              f"at {summary['best_at']}")


def _seeds_dir(ns, seeds: list[int]) -> tuple[Path, str]:
    """The folder of the seeds' runs (``RUN_DIR/seed-K``) and a message when it is not the one named: the default
    one gets a fresh -2, -3, ... suffix when it holds any of these seeds' runs, as a single run's does."""
    default = Path(f"runs/{ns.algo}-{Path(str(ns.dataset)).stem}-seeds")
    base = Path(ns.run_dir) if ns.run_dir else default
    taken = lambda d: any(_is_run(d / f"seed-{k}") for k in seeds)  # noqa: E731
    if ns.run_dir or ns.resume or ns.overwrite or not taken(base):
        return base, ""
    new = _free(default, taken)
    return new, f"{default} already holds runs of these seeds; these go to {new} (--resume continues the old " \
                f"ones, --overwrite replaces them)"


def _run_seeds(ns, cls, seeds: list[int]) -> int:
    """``--seeds``: fresh runs trained together by :func:`genpolicy.train.train_stacked` (seed K in RUN_DIR/seed-K,
    each equal to its single run); with --resume, they continue together from their checkpoints where they stopped
    at one position of a stacked stage (so the resumed stack ends bit for bit as the uninterrupted one), else each
    alone."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds names a seed twice: {seeds}")
    if ns.resume and ns.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if getattr(ns, "cfg_seed", None) is not None or any(s.split("=", 1)[0].strip() == "seed" for s in ns.set):
        raise ValueError("--seeds sets each run's seed; drop --seed / --set seed=")
    if not ns.print_config and not ns.dataset:
        raise ValueError("--dataset is required (a file, minari:ID, or a name from 'genpolicy datasets')")
    base, note = _seeds_dir(ns, seeds)
    dirs = [base / f"seed-{k}" for k in seeds]
    cfgs = [_resolve(ns, cls, k, d) for k, d in zip(seeds, dirs)]
    if ns.print_config:
        print("---\n".join(to_yaml(c) for c in cfgs), end="")
        return 0
    notes = [note] + [_check_folder(ns, d) for d in dirs]  # every folder checked before anything is deleted
    again = _resume_cmd(ns, ["--seeds", ",".join(map(str, seeds)), "--run-dir", str(base)])
    return _train(ns, cfgs, dirs, "\n".join(n for n in notes if n), again)


def _resume_cmd(ns, where: list[str]) -> list[str]:
    return ["genpolicy", "train", ns.algo, "--dataset", str(ns.dataset), *where, "--resume"] + \
        (["--env", ns.env] if ns.env else [])
