"""``genpolicy toy``: the Swiss-roll demo (genpolicy.demos.toy)."""

from __future__ import annotations

from ..config import add_dataclass_args, dataclass_from_args


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    from ..demos.toy import ToyConfig

    add_dataclass_args(sub.add_parser(name, help=text, description=text), ToyConfig)


def run(ns) -> int:
    from ..demos.toy import ToyConfig, format_table, run_toy

    cfg = dataclass_from_args(ToyConfig, ns)
    results = run_toy(cfg)
    print(format_table(results))
    print(f"wall time {results['wall_seconds']:.1f} s; plots and results.json in {cfg.out}/")
    return 0
