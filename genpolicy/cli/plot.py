"""``genpolicy plot RUN [RUN ...]``: learning curves of runs in one PNG."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    p = sub.add_parser(name, help=text, description=text + ": evaluation score vs step with the data's own score, "
                                                           "and the losses of every stage; runs overlaid.")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("-o", "--out", default=None, help="PNG to write (default: RUN/curves.png for one run, "
                                                     "curves.png for several)")


def run(ns) -> int:
    from ..plotting import plot_runs

    out = ns.out or (Path(ns.runs[0]) / "curves.png" if len(ns.runs) == 1 else Path("curves.png"))
    print(f"wrote {plot_runs(ns.runs, out)}")
    return 0
