"""Command line: ``genpolicy train | eval | export | plot | bench | datasets | data | toy``.

    genpolicy train gmpo --dataset hopper-medium-replay-v5 --env Hopper-v5 --preset cpu --set beta=6
    genpolicy eval runs/gmpo-hopper-medium-replay-v5-0 --episodes 10

Only the chosen command's parser (and its imports) is built, so ``genpolicy --help`` does not load torch. Every
error is one line on stderr with exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

__all__ = ["main", "build_parser", "COMMANDS"]

#: command -> (one-line help, module with add_parser(sub, argv) and run(ns))
COMMANDS = {
    "train": ("train an offline-RL algorithm on a dataset", "genpolicy.cli.train"),
    "eval": ("evaluate a run or policy file in its environment (seeded)", "genpolicy.cli.evaluate"),
    "export": ("write a run's policy as one safetensors file (no pickle)", "genpolicy.cli.export"),
    "plot": ("plot learning curves of runs (scores and losses)", "genpolicy.cli.plot"),
    "bench": ("run algorithms x tasks x seeds and tabulate mean +- s.e. (resumable)", "genpolicy.cli.bench"),
    "datasets": ("list the datasets that --dataset accepts by name", "genpolicy.cli.datasets"),
    "data": ("make D4RL-style datasets from MuJoCo", "genpolicy.cli.data"),
    "toy": ("Swiss-roll demo: train every path, plot, report held-out log-likelihoods", "genpolicy.cli.toy"),
}


def _command_of(argv: list[str]) -> str | None:
    rest = [a for a in argv if a != "--debug"]
    return rest[0] if rest and rest[0] in COMMANDS else None


def build_parser(argv: list[str] | None = None, command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` (default: the one named in ``argv``) gets its full sub-parser, the others a stub."""
    from .. import __version__

    argv = list(argv or [])
    command = command or _command_of(argv)
    parser = argparse.ArgumentParser(prog="genpolicy", description="Generative policies for offline RL.")
    parser.add_argument("--version", action="version", version=f"genpolicy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, module) in COMMANDS.items():
        if name == command:
            import_module(module).add_parser(sub, name, text, argv)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    plain = isinstance(e, (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError))
    return msg if plain else f"{type(e).__name__}: {msg}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser(argv).parse_args(argv)
    run = import_module(COMMANDS[ns.command][1]).run
    try:
        return run(ns)
    except Exception as e:  # noqa: BLE001 - every error becomes one line unless --debug
        if ns.debug:
            raise
        print(f"genpolicy {ns.command}: error: {_one_line(e)} (--debug shows the traceback)", file=sys.stderr)
        return 2
