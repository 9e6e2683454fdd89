"""The algorithm registry: names -> classes, and building an algorithm from a config.

Every module in :mod:`genpolicy.rl.algos` is imported when the package is (discovery), so an algorithm file that
decorates its class with :func:`register` is available to ``genpolicy train NAME`` and :func:`load_policy` with
no other edit. Algorithms defined elsewhere register the same way when their module is imported: by the user's
code, by ``GENPOLICY_PLUGINS`` or by an installed package's ``genpolicy.algorithms`` entry point. A checkpoint
records the module that defined its algorithm, but that record is never imported: a file never chooses code.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from ...config import PLUGIN_PRESETS, class_dict
from .base import Algorithm

__all__ = ["ALGORITHMS", "register", "algorithm_class", "build_algorithm", "config_from_dict", "load_plugins",
           "import_plugin",
           "PLUGINS_ENV", "ENTRY_POINTS"]

ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make an algorithm available to the CLI and to load_policy by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name; set the class attribute name = '...'")
    old = ALGORITHMS.get(cls.name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ValueError(f"algorithm name {cls.name!r} is taken by {old.__module__}.{old.__qualname__}")
    ALGORITHMS[cls.name] = cls
    module = sys.modules.get(cls.__module__)
    if not cls.__module__.startswith("genpolicy.") and getattr(module, "__file__", None):
        PLUGIN_PRESETS[cls.name] = Path(module.__file__).with_name(f"{cls.name}.yaml")  # one file plus one preset
    return cls


#: environment variable naming plugin algorithms to import: module names or .py files, separated by commas
PLUGINS_ENV = "GENPOLICY_PLUGINS"
#: entry-point group an installed package declares its algorithms in
ENTRY_POINTS = "genpolicy.algorithms"
_plugins_loaded = False


def load_plugins() -> None:
    """Import the algorithms the user named: ``GENPOLICY_PLUGINS`` (module names or ``.py`` files) and installed
    packages' ``genpolicy.algorithms`` entry points. Once per process; the only code genpolicy imports for an
    algorithm not in the package (never a module named inside a checkpoint or policy file)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for spec in filter(None, (s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(","))):
        import_plugin(spec)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        ep.load()


def import_plugin(spec: str):
    """Import one plugin a user named: a module name, or a ``.py`` file (imported as a module named after it, once).
    Returns the module."""
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    path = Path(spec)
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    mod_spec = importlib.util.spec_from_file_location(path.stem, path)
    if mod_spec is None or not path.is_file():
        raise ValueError(f"plugin {spec}: not a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[path.stem] = module
    mod_spec.loader.exec_module(module)
    return module


def algorithm_class(name: str, module: str | None = None) -> type[Algorithm]:
    """The registered class ``name`` (plugins the user named are imported first: :func:`load_plugins`).
    ``module``: the module a file says defines it, only quoted in the error: a file never chooses code."""
    if name not in ALGORITHMS:
        load_plugins()
    if name not in ALGORITHMS:
        hint = (f"; the file says it is defined in module {module!r}: genpolicy imports no module a file names, so "
                f"import it first, name it in {PLUGINS_ENV}, or install it with a {ENTRY_POINTS!r} entry point"
                if module and not module.startswith("genpolicy.") else "")
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}{hint}")
    return ALGORITHMS[name]


def config_from_dict(name: str, config: dict, module: str | None = None, **replace):
    """The algorithm's Config from a plain dict (as stored in checkpoints), with ``replace`` applied first (e.g.
    ``device="cpu"`` for a run trained on a GPU); unknown keys are an error."""
    cls = algorithm_class(name, module).Config
    config = dict(config)
    for old, new in class_dict(cls, "renamed").items():  # a field renamed since the file was written
        if old in config:
            value = config.pop(old)
            config.update({n: value for n in new if n not in config})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"config keys {unknown} are not fields of {cls.__name__}")
    return cls(**{**config, **replace})


def build_algorithm(name: str, obs_dim: int, act_dim: int, cfg, normalizer=None) -> Algorithm:
    """Instantiate the registered algorithm ``name`` with ``cfg``, an instance of its ``Config``."""
    cls = algorithm_class(name)
    if not isinstance(cfg, cls.Config):
        raise TypeError(f"{name} needs a {cls.Config.__name__}, got {type(cfg).__name__}")
    return cls(obs_dim, act_dim, cfg, normalizer)
