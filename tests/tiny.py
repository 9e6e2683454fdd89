"""Tiny budgets for tests: any registered algorithm's config at its own test budget (``Config.tiny``, merged over
the config's class hierarchy: a few steps, small networks)."""

from __future__ import annotations

import dataclasses

from genpolicy.config import class_dict
from genpolicy.rl.algos import algorithm_class


def tiny_fields(name: str) -> dict:
    """The ``Config.tiny`` fields of algorithm ``name`` (every class in its config's hierarchy adds its own)."""
    return class_dict(algorithm_class(name).Config, "tiny")


def tiny_config(name: str, **replace):
    return dataclasses.replace(algorithm_class(name).Config(**tiny_fields(name)), **replace)


def tiny_sets(name: str) -> list[str]:
    """The same budget as ``--set key=value`` strings (for the CLI and the suite runner)."""
    def text(v):
        return "[" + ",".join(map(str, v)) + "]" if isinstance(v, tuple) else str(v)
    return [f"{k}={text(v)}" for k, v in tiny_fields(name).items()]


#: modules of algorithms defined outside the package that the tests were asked to load (GENPOLICY_TEST_PLUGINS)
PLUGIN_MODULES: set[str] = set()


def load_test_plugins() -> None:
    """Import the algorithm files named in ``GENPOLICY_TEST_PLUGINS`` (os.pathsep-separated paths) before the tests
    are collected: an explicit import, as a user's plugin is, so every generic test covers them too."""
    import os

    from genpolicy.rl.algos.registry import import_plugin

    for path in filter(None, os.environ.get("GENPOLICY_TEST_PLUGINS", "").split(os.pathsep)):
        PLUGIN_MODULES.add(import_plugin(path).__name__)


def registered() -> list[str]:
    """The algorithms every generic test covers: the package's and the loaded plugins' (not the ones a test module
    registers for its own tests, such as ``toybc``)."""
    from genpolicy.rl.algos import ALGORITHMS

    return sorted(n for n, c in ALGORITHMS.items() if c.__module__.startswith("genpolicy.") or c.__module__ in
                  PLUGIN_MODULES)
