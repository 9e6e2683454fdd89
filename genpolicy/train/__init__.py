"""Training: the one setup (:mod:`.setup`), the one loop over one run or a stack of seeds (:mod:`.loop`,
:mod:`.stacked`), each run's bookkeeping (:mod:`.run`) and its folder (:mod:`.rundir`, whose docstring gives the
layout)."""

from ..rl.algos.base import compile_mode
from .loop import run_stage, stage_update, train
from .run import NonFiniteMetrics, TrainingInterrupted, evaluate_runs, non_finite
from .rundir import BEST, CHECKPOINT, load_checkpoint, save_checkpoint, software
from .setup import prepare_run, run_config
from .stacked import device_rng_state, train_stacked

__all__ = ["train", "prepare_run", "run_config", "stage_update", "compile_mode", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT", "BEST", "TrainingInterrupted", "NonFiniteMetrics", "non_finite", "train_stacked",
           "device_rng_state", "run_stage", "evaluate_runs", "software"]
