"""genpolicy: generative policies (diffusion and flow models) for offline reinforcement learning."""

from .couplings import IndependentCoupling, OTCoupling
from .generative import GenerativeModel, SampleWithLogProb, Trajectory
from .paths import GVP, ICFM, SF2M, VPSDE, GaussianPath, LinearPath, make_path
from .policy import load_policy
from .solvers import make_solver

__version__ = "0.1.0"

__all__ = [
    "GenerativeModel", "SampleWithLogProb", "Trajectory", "GaussianPath", "VPSDE", "GVP", "LinearPath", "ICFM",
    "SF2M", "make_path", "make_solver", "IndependentCoupling", "OTCoupling", "load_policy",
]
