"""``genpolicy bench``: the suite runner (genpolicy.suite): algorithms x tasks x seeds, resumable, one table."""

from __future__ import annotations


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    p = sub.add_parser(name, help=text, description=text + ". Run the same command again to continue after a kill.")
    p.add_argument("--algos", nargs="+", required=True, help="registered algorithm names")
    p.add_argument("--tasks", nargs="+", required=True, help="DATASET:ENV (or DATASET, then no evaluation)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", nargs="+", default=["cpu"], help="preset name(s) every algorithm applies")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field in every algorithm that has it")
    p.add_argument("--out", default="runs/suite", help="run root: a folder, or an fsspec URL (s3://..., gs://...) "
                   "that every node of a Ray cluster can reach")
    p.add_argument("--own-critics", dest="share_critic", action="store_false",
                   help="every algorithm trains its own IQL critic (default: one per task and seed, shared)")
    p.add_argument("--label", default=None,
                   help="with one algorithm: its folder and table column (e.g. gmpo-beta4 for an ablation run with "
                        "--set beta=4 in the same --out, sharing the critics)")
    p.add_argument("--stack-critics", action="store_true",
                   help="train the shared critics of the seeds that need one together, as one stacked model "
                        "(same critics up to rounding; fewer, larger kernels: for GPUs; about 1.1x on CPU)")
    p.add_argument("--stack-seeds", action="store_true",
                   help="--stack-critics, and train the new runs of several seeds of each algorithm together, stage "
                        "by stage, where the stage has a vectorized form (IQL critics, behaviour cloning, GMPO's "
                        "policy; same runs up to rounding; for GPUs: on CPU about as fast as one after the other)")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid over a config field (repeat for more fields): each point a variant ALGO+KEY=V in the "
                        "same suite, sharing the critics")
    p.add_argument("--sweep-random", type=int, default=0, metavar="N",
                   help="run N points of the --sweep grid drawn at random (seeded) instead of all")
    p.add_argument("--select-seeds", nargs="+", type=int, default=[], metavar="SEED",
                   help="also run these seeds and write selected.md: per task, the variant best on them, reported on "
                        "--seeds (choosing on the reported seeds themselves would be optimistic)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: one run after the other here; ray: one Ray task per run (pip install "
                        "'genpolicy[ray]'), runs whose worker dies retried from their checkpoint")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster (default: RAY_ADDRESS, else a "
                   "new local one)")
    p.add_argument("--cpus-per-run", type=float, default=1, help="with --backend ray: CPUs each run declares")
    p.add_argument("--gpus-per-run", type=float, default=0, help="with --backend ray: GPU fraction each run declares")
    p.add_argument("--retries", type=int, default=3, help="with --backend ray: retries of a run whose worker died")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(ns) -> int:
    from ..rl.algos import ALGORITHMS
    from ..suite import parse_task, run_suite

    unknown = [a for a in ns.algos if a not in ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; registered: {sorted(ALGORITHMS)}")
    table = run_suite(ns.algos, [parse_task(t) for t in ns.tasks], ns.seeds, ns.budget, ns.out, ns.set,
                      ns.share_critic, ns.progress, ns.label, ns.stack_critics, ns.stack_seeds, ns.backend,
                      ns.address, ns.sweep, ns.sweep_random, ns.select_seeds, ns.cpus_per_run, ns.gpus_per_run,
                      ns.retries)
    print(table.read_text())
    print(f"table: {table} (+ results.csv, curves-*.png)")
    if ns.select_seeds:
        print((table.parent / "selected.md").read_text())
    return 0
