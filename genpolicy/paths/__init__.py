"""Gaussian conditional probability paths with ONE time convention: t=0 is data, t=1 is noise.

- :mod:`.base`: the abstract :class:`GaussianPath` (alpha, sigma, drift, g^2, log-SNR, conversions between
  velocity / score / noise / data predictions) and :class:`PathSample`.
- :mod:`.diffusion`: :class:`VPSDE`, :class:`GVP`, :class:`LinearPath`.
- :mod:`.bridges`: :class:`ICFM` and :class:`SF2M` (interpolants with Gaussian marginals).

A new path is one subclass of :class:`GaussianPath` plus one entry in :data:`PATHS`.
"""

from __future__ import annotations

from typing import Literal

from .base import PARAMETERIZATIONS, GaussianPath, PathSample, expand_t
from .bridges import ICFM, SF2M
from .diffusion import GVP, VPSDE, LinearPath

__all__ = ["GaussianPath", "PathSample", "VPSDE", "GVP", "LinearPath", "ICFM", "SF2M", "PARAMETERIZATIONS",
           "make_path", "PATHS", "PathName", "Parameterization", "expand_t"]

PATHS = {
    "vpsde": VPSDE,
    "gvp": GVP,
    "linear": LinearPath,
    "icfm": ICFM,
    "sf2m": SF2M,
}


def make_path(name: str, **kwargs) -> GaussianPath:
    """Build a path by name: one of ``vpsde``, ``gvp``, ``linear``, ``icfm``, ``sf2m``."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in PATHS:
        raise ValueError(f"unknown path {name!r}; expected one of {sorted(PATHS)}")
    return PATHS[key](**kwargs)


#: the path names a config may name (one list: the keys of PATHS)
PathName = Literal[tuple(PATHS)]
#: what a network may output
Parameterization = Literal[PARAMETERIZATIONS]
