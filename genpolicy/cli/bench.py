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
    p.add_argument("--out", default="runs/suite")
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
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(ns) -> int:
    from ..rl.algos import ALGORITHMS
    from ..suite import parse_task, run_suite

    unknown = [a for a in ns.algos if a not in ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; registered: {sorted(ALGORITHMS)}")
    table = run_suite(ns.algos, [parse_task(t) for t in ns.tasks], ns.seeds, ns.budget, ns.out, ns.set,
                      ns.share_critic, ns.progress, ns.label, ns.stack_critics, ns.stack_seeds)
    print(table.read_text())
    print(f"table: {table} (+ results.csv, curves-*.png)")
    return 0
