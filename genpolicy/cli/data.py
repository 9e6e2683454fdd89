"""``genpolicy data make | behaviour | curves``: D4RL-style datasets from our own MuJoCo agents."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import add_dataclass_args, dataclass_from_args


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    from ..datagen.make import ENVS, LEVELS, MakeConfig
    from ..datagen.sac import SACConfig

    data = sub.add_parser(name, help=text, description=text)
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
    ac = dsub.add_parser("actor", help="write a behaviour agent's policy snapshot as one safetensors file (no pickle; "
                         "'genpolicy data maze --controller' reads it)")
    ac.add_argument("snapshot", help="AGENT/policies/step_N.pt")
    ac.add_argument("-o", "--out", required=True, help="output file (.safetensors)")
    ac.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cv = dsub.add_parser("curves", help="plot the behaviour agents' snapshot returns and the medium/expert picks")
    cv.add_argument("--out-png", default="datasets/behaviour_curves.png")
    cv.add_argument("envs", nargs="*", help="short env names (default: every agent found)")
    add_dataclass_args(cv, MakeConfig)
    ex = dsub.add_parser("export", help="write a dataset in another library's format (Minari)")
    ex.add_argument("name", help="a dataset: a suite name (genpolicy datasets), a file or minari:ID")
    ex.add_argument("--minari", required=True, metavar="DIR",
                    help="write it as a Minari dataset under DIR (a MINARI_DATASETS_PATH); needs the minari extra")
    ex.add_argument("--id", help="its Minari id namespace/env/name-vN (default for suite names: genpolicy/ENV/LEVEL-vN)")
    ex.add_argument("--env", help="the Gymnasium id it was collected in (default: its data card's)")
    mz = dsub.add_parser("maze", help="a maze dataset: the point mass (D4RL's maze2d recipe: BFS waypoints, PD "
                         "control) or D4RL's six AntMaze datasets (the goal-reaching ant driven by BFS waypoints)")
    mz.add_argument("task", choices=["pointmaze-umaze", "pointmaze-medium", "pointmaze-large", "antmaze-umaze",
                                     "antmaze-umaze-diverse", "antmaze-medium-play", "antmaze-medium-diverse",
                                     "antmaze-large-play", "antmaze-large-diverse"])
    mz.add_argument("--transitions", type=int, default=None,
                    help="default: point 100k / 200k / 400k (umaze/medium/large), ant 100k")
    mz.add_argument("--seed", type=int, default=0)
    mz.add_argument("--noise", type=float, default=None,
                    help="action noise std (default: 0.5 for the point, D4RL's --noisy; 0 for the ant)")
    mz.add_argument("--controller", help="antmaze: the goal-reaching ant's policy snapshot "
                    "(AGENT/policies/step_N.pt from 'genpolicy data behaviour ant-goal')")
    mz.add_argument("--goal-norm", type=float, default=None,
                    help="antmaze: show each waypoint to the controller as its direction at this distance (D4RL's "
                    "driver: 10; 0: the vector itself); default: as the controller's arena showed goals in training")
    mz.add_argument("--out", default="datasets")
    mz.add_argument("--no-progress", dest="progress", action="store_false")


def run(ns) -> int:
    from ..datagen.make import ENVS, MakeConfig, make_dataset
    from ..datagen.sac import SACConfig, train_sac

    if ns.data_command == "curves":
        from ..datagen.make import plot_behaviour_curves

        print(plot_behaviour_curves(dataclass_from_args(MakeConfig, ns), ns.out_png, ns.envs or None))
        return 0
    if ns.data_command == "actor":
        from ..datagen.sac import export_actor, load_actor

        if Path(ns.out).exists() and not ns.overwrite:
            raise FileExistsError(f"{ns.out} exists; pass --overwrite to replace it")
        out = export_actor(ns.snapshot, ns.out)
        meta = load_actor(out)[1]
        print(json.dumps({"file": str(out), **{k: v for k, v in meta.items() if k != "actor"}}, indent=1))
        return 0
    if ns.data_command == "export":
        from ..rl.datasets import load_dataset
        from ..rl.minari_io import export_minari, minari_id

        ds = load_dataset(ns.name)
        dataset_id = ns.id or minari_id(Path(ns.name).stem if Path(ns.name).suffix else ns.name)
        env = ns.env or ds.metadata.get("card", {}).get("env_id") or ds.metadata.get("env_id")
        folder = export_minari(ds, dataset_id, ns.minari, env_id=env)
        print(json.dumps({"minari_id": dataset_id, "folder": str(folder), "transitions": len(ds), "env": env,
                          "load_with": f"MINARI_DATASETS_PATH={ns.minari} python -c \"import minari; "
                                       f"minari.load_dataset('{dataset_id}')\""}, indent=1))
        return 0
    if ns.data_command == "maze":
        from ..datagen.maze import make_maze_dataset

        card = make_maze_dataset(ns.task, ns.out, ns.transitions, ns.seed, ns.noise, ns.progress, ns.controller,
                                 ns.goal_norm)
        print(json.dumps(card, indent=2))
        return 0
    if ns.data_command == "make":
        cfg = dataclass_from_args(MakeConfig, ns)
        card = make_dataset(ns.env, ns.level, cfg, progress=ns.progress,
                            command=" ".join(["genpolicy"] + sys.argv[1:]))
        print(json.dumps(card, indent=2))
        return 0
    cfg = dataclass_from_args(SACConfig, ns)
    hist = train_sac(ENVS[ns.env], Path(ns.root) / ns.env, cfg, progress=ns.progress, resume=not ns.fresh)
    print(json.dumps({"env": ns.env, "eval_returns": hist}, indent=1))
    return 0
