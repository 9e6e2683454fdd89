"""Command line: ``genpolicy toy`` (more subcommands arrive with the offline-RL pipeline)."""

from __future__ import annotations

import argparse
import sys

from .config import add_dataclass_args, dataclass_from_args

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from .toy import ToyConfig

    parser = argparse.ArgumentParser(prog="genpolicy", description="Generative policies for offline RL.")
    sub = parser.add_subparsers(dest="command", required=True)
    toy = sub.add_parser("toy", help="Swiss-roll demo: train every path, plot, report held-out log-likelihoods",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataclass_args(toy, ToyConfig)
    return parser


def _cmd_toy(ns) -> int:
    from .toy import ToyConfig, format_table, run_toy

    cfg = dataclass_from_args(ToyConfig, ns)
    results = run_toy(cfg)
    print(format_table(results))
    print(f"wall time {results['wall_seconds']:.1f} s; plots and results.json in {cfg.out}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return {"toy": _cmd_toy}[ns.command](ns)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"genpolicy {ns.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
