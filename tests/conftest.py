import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: oversubscribed cores make torch's spinning threads 10x slower
    torch.set_num_threads(1)

from genpolicy.analytic import GaussianOracle  # noqa: E402
from genpolicy.generative import GenerativeModel  # noqa: E402
from genpolicy.paths import PATHS, make_path  # noqa: E402

from .tiny import load_test_plugins  # noqa: E402

load_test_plugins()  # GENPOLICY_TEST_PLUGINS: algorithm files every generic test then covers

PATH_NAMES = list(PATHS)  # every registered path runs through the closed-form tests
DIFFUSION_PATHS = ["vpsde", "gvp", "linear"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def f64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def gaussian_problem(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.tensor([1.5, -2.0, 0.5, 1.0][:d], dtype=torch.float64)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = 0.3 * a @ a.T + 0.2 * torch.eye(d, dtype=torch.float64)
    return m, cov


def oracle_model(path_name, param, d=3, **path_kw):
    m, cov = gaussian_problem(d)
    path = make_path(path_name, **path_kw)
    return GenerativeModel(GaussianOracle(path, m, cov, param), path, (d,), param=param), m, cov


def whitened_normal(n, d, seed=0):
    """n standard-normal rows whose sample mean is exactly 0 and sample covariance exactly I."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(torch.cov(z.T))
    return z @ torch.linalg.inv(chol).T
