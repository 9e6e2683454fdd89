"""genpolicy: generative policies (diffusion and flow models) for offline reinforcement learning.

Names are imported on first use, so that ``import genpolicy`` (and ``genpolicy --help``) does not load torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "GenerativeModel": ".generative", "SampleWithLogProb": ".conditions", "Trajectory": ".conditions",
    "GaussianPath": ".paths", "VPSDE": ".paths", "GVP": ".paths", "LinearPath": ".paths", "ICFM": ".paths",
    "SF2M": ".paths", "make_path": ".paths", "make_solver": ".solvers", "IndependentCoupling": ".couplings",
    "OTCoupling": ".couplings", "load_policy": ".policy", "export_policy": ".export",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genpolicy' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
