"""The suite runner: algorithms x tasks x seeds at a named budget, resumable, with one IQL critic per (task, seed)
shared by every algorithm whose critic settings match, and a results table (mean +- s.e. over seeds, the data's own
score beside it) plus learning curves per task.

    genpolicy bench --algos bc iql gmpo --tasks hopper-medium-v5:Hopper-v5 --seeds 0 1 2 --budget cpu

Layout under ``--out``: ``TASK/ALGO/seed-K/`` (one ordinary run folder each), ``TASK/critic/seed-K/`` (the shared
critic's run), ``results.md``, ``results.csv``, ``curves-TASK.png``. Running the same command again skips finished
runs (they have ``summary.json``), resumes a half-finished one from its checkpoint, and rewrites the table from
the run folders (so rows are never duplicated).
"""

from .report import (act_latency, collect, everything_in, plot_curves, score_cell, score_label, score_stats,
                     write_table)
from .plan import Job, run_job
from .root import RunRoot
from .runner import run_suite
from .sweep import Variant, select, variants, write_selection
from .task import Task, parse_task

__all__ = ["Task", "parse_task", "run_suite", "Job", "run_job", "RunRoot", "Variant", "select", "variants",
           "write_selection", "collect", "write_table", "plot_curves", "everything_in", "act_latency",
           "score_stats", "score_cell", "score_label"]
