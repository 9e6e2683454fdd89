"""Offline RL on top of the generative core: datasets, critics, evaluation, algorithms."""
