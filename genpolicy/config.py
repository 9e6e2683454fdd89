"""Typed dataclass configs -> command-line flags. A field's docstring (the string literal under it) is its
``--help`` text; presets and ``--set key=value`` only override fields."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import lru_cache

__all__ = ["field_docs", "add_dataclass_args", "dataclass_from_args", "apply_overrides"]


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
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(tp):
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return "seq", typing.get_args(tp)[0]
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return "opt", args[0]
    return "plain", tp


def add_dataclass_args(parser, cls, dest_prefix: str = "", suppress_defaults: bool = False) -> None:
    """Add one ``--field-name`` flag per dataclass field, with its type, default and docstring.

    Args:
        parser: an ArgumentParser or argument group.
        dest_prefix: prefix of each flag's destination name (to tell config fields from other flags).
        suppress_defaults: leave unset flags out of the namespace (so that presets below them survive).
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind, tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kw = dict(dest=dest_prefix + f.name, help=f"{docs.get(f.name, '')} (default: {default})",
                  default=argparse.SUPPRESS if suppress_defaults else default)
        if tp is bool and kind == "plain":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind == "seq":
            parser.add_argument(flag, nargs="+", type=tp, metavar=f.name.upper(), **kw)
        else:
            parser.add_argument(flag, type=tp, metavar=f.name.upper(), **kw)


def dataclass_from_args(cls, ns: argparse.Namespace):
    """Build ``cls`` from parsed flags (sequence fields become tuples where typed so)."""
    hints = typing.get_type_hints(cls)
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
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for {type(cfg).__name__}; valid keys: {sorted(names)}")
    return dataclasses.replace(cfg, **overrides)
