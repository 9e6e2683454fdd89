"""Typed dataclass configs -> command-line flags, presets and overrides.

A field's docstring (the string literal under it) is its ``--help`` text; a field typed ``Literal[...]`` lists its
allowed values once (shown by ``--help`` as choices, checked by :func:`check_choices`). Presets
(``genpolicy/presets/<algo>.yaml``) and ``--set key=value`` only override fields.

Precedence (:func:`resolve_config`): dataclass defaults < presets (in the order given) < ``--FIELD`` flags < ``--set``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import textwrap
import typing
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["field_docs", "add_dataclass_args", "dataclass_from_args", "apply_overrides", "check_choices",
           "literal_choices", "load_presets", "task_presets", "resolve_config", "check_resume_changes", "to_yaml",
           "steps_from_epochs", "class_union", "class_dict", "coerce", "Range", "field_ranges"]


@lru_cache(maxsize=None)
def field_docs(cls) -> dict[str, str]:
    """Map field name -> the docstring written under it in the class body (empty when none)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.replace("``", "").split())
    return docs


def literal_choices(tp) -> tuple | None:
    """The allowed values of a ``Literal[...]`` type (None for any other type)."""
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric field's allowed range, declared beside the field: ``seed: Annotated[int, Range(ge=0)] = 0``. Each
    bound is optional (``ge``/``gt`` below, ``le``/``lt`` above); a tuple field's every element must be in range."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def text(self, name: str = "x") -> str:
        """``>=0``, ``0<x<1``, ``0<x<=1``: the range as the error messages and ``--help`` print it."""
        lo = f"{_num(self.ge)}<=" if self.ge is not None else f"{_num(self.gt)}<" if self.gt is not None else ""
        hi = f"<={_num(self.le)}" if self.le is not None else f"<{_num(self.lt)}" if self.lt is not None else ""
        if lo and hi:
            return f"{lo}{name}{hi}"
        if lo:
            return (">=" if self.ge is not None else ">") + lo[:-2 if self.ge is not None else -1]
        return hi


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def field_ranges(cls) -> dict[str, Range]:
    """Every field of dataclass ``cls`` (its whole hierarchy) that declares a :class:`Range` in its annotation."""
    return {name: next(m for m in tp.__metadata__ if isinstance(m, Range))
            for name, tp in typing.get_type_hints(cls, include_extras=True).items()
            if typing.get_origin(tp) is typing.Annotated and any(isinstance(m, Range) for m in tp.__metadata__)}


def check_choices(cfg) -> None:
    """Validate dataclass ``cfg`` (call it from ``__post_init__``): every ``Literal`` field holds an allowed value and
    every field annotated with a :class:`Range` is in it. Raises a one-line ValueError naming the field, the value
    and what is allowed."""
    for name, tp in _hints(type(cfg)).items():
        choices = literal_choices(tp)
        if choices is not None and getattr(cfg, name) not in choices:
            raise ValueError(f"{type(cfg).__name__}.{name}={getattr(cfg, name)!r}: expected one of {list(choices)}")
    for name, r in field_ranges(type(cfg)).items():
        value = getattr(cfg, name)
        if not all(v in r for v in (value if isinstance(value, (tuple, list)) else (value,))):
            raise ValueError(f"{type(cfg).__name__}.{name}={value!r}: must be {r.text(name)}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _base_type(tp):
    if literal_choices(tp) is not None:
        return "choice", type(literal_choices(tp)[0])
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return "seq", typing.get_args(tp)[0]
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return "opt", args[0]
    return "plain", tp


def add_dataclass_args(parser, cls, dest_prefix: str = "", suppress_defaults: bool = False, shown=None) -> None:
    """Add one ``--field-name`` flag per dataclass field, with its type, default and docstring.

    Args:
        parser: an ArgumentParser or argument group.
        dest_prefix: prefix of each flag's destination name (to tell config fields from other flags).
        suppress_defaults: leave unset flags out of the namespace (so that presets below them survive).
        shown: a ``cls`` instance whose values ``--help`` shows as the defaults (e.g. with presets applied).
    """
    docs = field_docs(cls)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if shown is not None:
            default = getattr(shown, f.name)
        kind, tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        choices = literal_choices(hints[f.name])
        allowed = f"; one of {', '.join(map(str, choices))}" if choices else ""
        kw = dict(dest=dest_prefix + f.name, help=f"{docs.get(f.name, '')} (default: {default}{allowed})",
                  default=argparse.SUPPRESS if suppress_defaults else default)
        if tp is bool and kind == "plain":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind == "choice":
            parser.add_argument(flag, type=tp, choices=literal_choices(hints[f.name]), metavar=f.name.upper(), **kw)
        elif kind == "seq":
            parser.add_argument(flag, nargs="+", type=tp, metavar=f.name.upper(), **kw)
        else:
            parser.add_argument(flag, type=tp, metavar=f.name.upper(), **kw)


def dataclass_from_args(cls, ns: argparse.Namespace):
    """Build ``cls`` from parsed flags (sequence fields become tuples where typed so)."""
    hints = _hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name)
        if typing.get_origin(hints[f.name]) is tuple and v is not None:
            v = tuple(v)
        kw[f.name] = v
    return cls(**kw)


def apply_overrides(cfg, overrides: dict):
    """Return a copy of dataclass ``cfg`` with fields replaced; unknown keys raise a clear error."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    renamed = class_dict(type(cfg), "renamed")
    if any(k in renamed for k in unknown):
        now = "; ".join(f"{k} is now {' and '.join(renamed[k])}" for k in unknown if k in renamed)
        raise ValueError(f"renamed config key(s) for {type(cfg).__name__}: {now}")
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for {type(cfg).__name__}; valid keys: {sorted(names)}")
    return dataclasses.replace(cfg, **overrides)


#: preset files of algorithms defined outside the package (a plugin's ``NAME.yaml`` beside its module), by name
PLUGIN_PRESETS: dict[str, Path] = {}


def load_presets(algo: str) -> dict:
    """Presets of an algorithm: ``genpolicy/presets/<algo>.yaml`` (a plugin's: the ``<algo>.yaml`` beside its module,
    :data:`PLUGIN_PRESETS`) over the task presets every algorithm takes (``genpolicy/presets/tasks.yaml``: an
    algorithm's preset of the same name adds to them, its fields winning)."""
    import yaml

    def read(name: str) -> dict:
        f = resources.files("genpolicy") / "presets" / f"{name}.yaml"
        if not f.is_file() and name in PLUGIN_PRESETS:
            f = PLUGIN_PRESETS[name]
        return yaml.safe_load(f.read_text()) or {} if f.is_file() else {}

    own = read(algo)
    for name, fields in read("tasks").items():
        own[name] = {**fields, **(own.get(name) or {})}
    return own


def task_presets(presets: dict, budget: list[str], task: str) -> list[str]:
    """The presets a run on ``task`` (a preset name: ``hopper-medium``) takes after its budget's, those of them that
    exist: the task's own, then each budget's values for the task (``paper-hopper-medium``: the paper code's policy
    epochs there)."""
    return [p for p in [task, *(f"{b}-{task}" for b in budget)] if p in presets]


def coerce(cls, key: str, value):
    """Turn a preset value or a --set string (parsed as YAML) into the field's type."""
    import yaml

    hints = _hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # (not the ClassVar tables the hints also list)
    renamed = class_dict(cls, "renamed")
    if key not in fields and key in renamed:
        raise ValueError(f"config key {key!r} of {cls.__name__} is now {' and '.join(map(repr, renamed[key]))}")
    if key not in fields:
        raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(fields)}")
    v = yaml.safe_load(value) if isinstance(value, str) else value
    tp = hints[key]
    if typing.get_origin(tp) is tuple:
        return tuple(v) if isinstance(v, (list, tuple)) else (v,)
    if tp is float and isinstance(v, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            return float(v)
        except ValueError:
            raise ValueError(f"{key}={value!r}: expected float") from None
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if (tp is str or literal_choices(tp) is not None) and not isinstance(v, str):
        return str(value)
    if tp in (int, float, bool) and not isinstance(v, tp):
        raise ValueError(f"{key}={value!r}: expected {tp.__name__}")
    return v


def resolve_config(cls, presets: list[str], available: dict, flags: dict, sets: list[str], base=None):
    """Defaults (or ``base``, a ``cls`` instance) < presets < flags < --set, with clear errors for unknown
    presets and keys."""
    cfg = cls() if base is None else base
    for p in presets:
        if p not in available:
            raise ValueError(f"unknown preset {p!r}; available: {sorted(available)}")
        cfg = apply_overrides(cfg, {k: coerce(cls, k, v) for k, v in available[p].items()})
    cfg = apply_overrides(cfg, flags)
    overrides = {}
    for s in sets:
        if "=" not in s:
            raise ValueError(f"--set expects key=value, got {s!r}")
        k, v = s.split("=", 1)
        overrides[k.strip()] = coerce(cls, k.strip(), v)
    return apply_overrides(cfg, overrides)


def class_union(cls, attr: str) -> set:
    """The names a ClassVar tuple ``attr`` declares anywhere in ``cls``'s hierarchy."""
    return {name for klass in cls.__mro__ for name in vars(klass).get(attr, ())}


def class_dict(cls, attr: str) -> dict:
    """A ClassVar dict ``attr`` merged over ``cls``'s hierarchy (subclasses add to and override their bases)."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get(attr, {}))
    return merged


def check_resume_changes(old, new) -> dict:
    """The fields ``new`` changes from ``old`` (a run's config when it is resumed); raises a one-line ValueError
    unless each is declared safe by the config class: ``resume_safe`` (any value) or ``stage_steps`` (a stage
    length, which may only grow)."""
    changed = {f.name: getattr(new, f.name) for f in dataclasses.fields(new)
               if getattr(new, f.name) != getattr(old, f.name)}
    safe, grow = class_union(type(new), "resume_safe"), class_union(type(new), "stage_steps")
    refused = sorted(k for k in changed if k not in safe | grow)
    shrunk = sorted(k for k in changed if k in grow and changed[k] < getattr(old, k))
    if refused or shrunk:
        why = []
        if refused:
            why.append(f"{', '.join(refused)} cannot change in a resumed run (it would no longer be the run that "
                       f"started); allowed: {', '.join(sorted(safe | grow))}")
        if shrunk:
            why.append(f"{', '.join(shrunk)} may only grow")
        raise ValueError("; ".join(why))
    return changed


def to_yaml(cfg) -> str:
    """The config as YAML (sequences as lists), readable back as a preset by :func:`resolve_config`."""
    import yaml

    return yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()},
                          sort_keys=False)


def steps_from_epochs(cfg, rows: int):
    """``cfg`` with every budget given in epochs (passes over ``rows`` transitions at ``cfg.batch_size``) turned into
    its step field: the class's ``epoch_fields`` maps e.g. ``critic_epochs`` to ``critic_steps``; 0 epochs leaves the
    step count as it is. ``epoch_batch_fields`` names a stage's own batch-size field (``policy_batch_size``), read
    in place of ``batch_size`` when it is not 0. The paper's code states its budgets in epochs."""
    own_batch = class_dict(type(cfg), "epoch_batch_fields")

    def batch(e: str) -> int:
        return (getattr(cfg, own_batch[e]) if e in own_batch else 0) or cfg.batch_size

    steps = {s: max(1, math.ceil(getattr(cfg, e) * rows / batch(e)))
             for e, s in class_dict(type(cfg), "epoch_fields").items() if getattr(cfg, e) > 0}
    return dataclasses.replace(cfg, **steps) if steps else cfg
