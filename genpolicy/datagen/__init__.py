"""Make D4RL-style datasets from MuJoCo: behaviour policies, rollouts, HDF5 files with data cards."""

from .rollout import collect, save_d4rl_hdf5

__all__ = ["collect", "save_d4rl_hdf5"]
