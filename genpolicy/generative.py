"""GenerativeModel: one API for diffusion, flow and bridge models over a Gaussian path.

    model = GenerativeModel(net, make_path("gvp"), param="velocity", x_shape=(action_dim,))
    loss = model.matching_loss(actions, cond=obs, kind="flow")           # per-sample, shape (B,)
    a = model.sample(cond=obs, solver="euler", steps=32)                 # (B, action_dim)
    logp = model.log_prob(a, cond=obs, divergence="exact")               # (B,)

Conditions are either tensors of shape ``(B, *cond_shape)`` or ``tensordict.TensorDict`` with
``batch_size=[B]`` (dict observations). The model passes them to the network unchanged; the bundled
networks flatten a TensorDict by concatenating its leaves (flattened per sample) in sorted key order,
see :func:`genpolicy.nets.flatten_condition`.

Time convention: t=0 data, t=1 noise. Sampling integrates from the noise end to the data end;
``log_prob`` integrates the other way with the instantaneous change of variables (paper Eq 44-45).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from . import likelihood
from .couplings import Coupling, make_coupling
from .matching import LOSS_KINDS, WEIGHTINGS, LossKind, Weighting, matching_loss
from .likelihood import Divergence, Probe
from .paths import PARAMETERIZATIONS, GaussianPath, Parameterization, expand_t, make_path
from .conditions import (SampleWithLogProb, Trajectory, batch_size_of, check_finite, device_of, index_cond)
from .rng import draw
from .solvers import Sampler, make_solver, uniform_grid

__all__ = ["GenerativeModel", "Trajectory", "SampleWithLogProb", "batch_size_of"]


class GenerativeModel(nn.Module):
    """A continuous-time generative model: a network, a Gaussian path and a parameterization.

    Args:
        net: module with signature ``net(x, t, cond) -> Tensor`` shaped like ``x``.
        path: a :class:`~genpolicy.paths.GaussianPath` or its name (``vpsde``, ``gvp``, ``linear``,
            ``icfm``, ``sf2m``).
        param: what the network outputs: ``velocity``, ``score``, ``noise`` or ``data``.
        x_shape: shape of one sample (e.g. ``(action_dim,)``).
        coupling: ``independent`` (default), ``ot`` (OT-CFM / SF2M minibatch OT) or a Coupling.
        compute_dtype: run the network under autocast to this dtype (``torch.bfloat16``: its matrix products in
            bfloat16: 1.3-1.9x faster GMPO policy steps on a CPU with AVX-512 BF16); its output comes back
            in ``x``'s dtype, and everything after it (path conversion, losses, solvers) stays in that dtype.
            None (default): the network's own dtype.
    """

    def __init__(self, net: nn.Module, path: GaussianPath | str, x_shape: tuple[int, ...] | int,
                 param: Parameterization = "velocity", coupling: str | Coupling | None = "independent",
                 compute_dtype: torch.dtype | None = None):
        super().__init__()
        if param not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {param!r}; expected one of {PARAMETERIZATIONS}")
        self.net = net
        self.path = make_path(path) if isinstance(path, str) else path
        self.param = param
        self.x_shape = (x_shape,) if isinstance(x_shape, int) else tuple(x_shape)
        self.coupling = make_coupling(coupling)
        self.compute_dtype = compute_dtype
        self._prior_stds: dict[float, float] = {}
        for need in ("velocity", "noise"):
            self._prior_std(self._interval(need)[1])

    # ------------------------------------------------------------------ validation helpers
    def _check_x(self, x: Tensor, name: str = "x") -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        k = len(self.x_shape)
        if x.dim() < k + 1 or tuple(x.shape[-k:]) != self.x_shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; wanted (B, {', '.join(map(str, self.x_shape))})")
        check_finite(name, x)

    def _check_cond(self, cond: Any, batch: int | None) -> None:
        if cond is None:
            return
        b = batch_size_of(cond)
        if batch is not None and b != batch:
            shape = tuple(cond.shape) if isinstance(cond, Tensor) else tuple(cond.batch_size)
            raise ValueError(f"cond has batch size {b} (shape {shape}) but x has batch size {batch}")
        check_finite("cond", cond)

    def _check_t(self, t: Tensor | float, x: Tensor) -> Tensor:
        batch = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t has shape {tuple(t.shape)}; wanted ({batch},) or a scalar")
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > 1).any()):
            raise ValueError(f"t must lie in [0, 1] (t=0 data, t=1 noise); got values in "
                             f"[{float(t.min()):.4g}, {float(t.max()):.4g}]")
        return t

    def _interval(self, need: str) -> tuple[float, float]:
        """Time interval usable when the model's output must be turned into ``need``."""
        both_velocity = self.param == "velocity" and need == "velocity"
        return self.path.time_interval("velocity" if both_velocity else "noise")

    # ------------------------------------------------------------------ predictions
    def predict_unchecked(self, x: Tensor, t: Tensor, cond: Any, kind: str) -> Tensor:
        """Network output converted to ``kind`` (velocity, score, noise, data); no input checks."""
        if self.compute_dtype is None:
            out = self.net(x, t, cond)
        else:
            with torch.autocast(x.device.type, dtype=self.compute_dtype):
                out = self.net(x, t, cond)
            out = out.to(x.dtype)
        return self.path.convert(out, x, t, self.param, kind)

    def prediction_fn(self, cond: Any, kind: str, guidance=None, clip_denoised: float | None = None):
        """``predict(x, t)`` of ``kind`` for a scalar time ``t`` and a fixed condition, as solvers take it.

        ``guidance(x, t, cond)``: a term added to the model's score, ``grad_x log h_t(x)`` (energy guidance: the
        sampler then follows ``p_t(x) h_t(x)``; QGPO Eq 13); its noise form is ``eps - sigma_t guidance``.
        ``clip_denoised = c``: the denoised estimate ``x0 = (x - sigma_t eps) / alpha_t`` is clamped to [-c, c] and
        the noise re-derived from it, ``eps = (x - alpha_t x0) / sigma_t`` (DDPM's ``clip_denoised``, which
        Diffusion-QL samples with); computed as a clamp of ``alpha_t x0`` to ``[-c alpha_t, c alpha_t]``, so it
        never divides by alpha."""
        if guidance is None and clip_denoised is None:
            return lambda x, t: self.predict_unchecked(x, t.expand(x.shape[0]), cond, kind)

        def adjusted(x, t):
            tt = t.expand(x.shape[0])
            eps = self.predict_unchecked(x, tt, cond, "noise")
            sigma = expand_t(self.path.sigma(tt), x)
            if guidance is not None:
                eps = eps - sigma * guidance(x, tt, cond)
            if clip_denoised is not None:
                bound = clip_denoised * expand_t(self.path.alpha(tt), x)
                eps = (x - torch.minimum(torch.maximum(x - sigma * eps, -bound), bound)) / sigma
            return self.path.convert(eps, x, tt, "noise", kind)

        return adjusted

    def predict(self, x: Tensor, t: Tensor | float, cond: Any = None, kind: str = "velocity") -> Tensor:
        """The model's prediction of ``kind`` at ``(x, t)``.

        Args:
            x: points, ``(B, *x_shape)``.
            t: times in [0, 1], ``(B,)`` or scalar.
            cond: condition with batch B, or None.
            kind: ``velocity``, ``score``, ``noise`` or ``data``.

        Returns:
            Tensor shaped like ``x``.
        """
        self._check_x(x)
        t = self._check_t(t, x)
        self._check_cond(cond, x.shape[0])
        if kind not in PARAMETERIZATIONS:
            raise ValueError(f"unknown prediction kind {kind!r}; expected one of {PARAMETERIZATIONS}")
        return self.predict_unchecked(x, t, cond, kind)

    def velocity(self, x: Tensor, t: Tensor | float, cond: Any = None) -> Tensor:
        """Velocity field v(x, t | cond) of the probability-flow ODE (Eq 21)."""
        return self.predict(x, t, cond, "velocity")

    # ------------------------------------------------------------------ training
    def matching_loss(self, x0: Tensor, cond: Any = None, kind: LossKind = "flow", weighting: Weighting = "vanilla",
                      t: Tensor | None = None, x1: Tensor | None = None, check: bool = True) -> Tensor:
        """Per-sample matching loss, shape ``(B,)`` (average it, or weight it as GMPO does).

        ``kind="flow"``: conditional flow matching (Eq 26), ``1/2 ||v_theta(x_t) - v(x_t | x0, x1)||^2``.
        ``kind="score"``: denoising score matching (Eq 23) ``1/2 lambda(t) ||s_theta(x_t) + eps / sigma||^2``
        with ``weighting="vanilla"`` (lambda = sigma^2) or ``"maximum_likelihood"`` (lambda = g^2) (Eq 24).

        Args:
            x0: data, ``(B, *x_shape)``.
            cond: condition with batch B, or None.
            kind: ``flow`` or ``score``.
            weighting: score-matching weighting (ignored for flow matching).
            t: optional times ``(B,)``; uniform on the model's training interval when None.
            x1: optional noise ``(B, *x_shape)``; standard normal when None.
            check: validate shapes and finiteness of the inputs. Training loops on validated data pass False:
                the checks read tensor values on the host, which synchronises and breaks compiled graphs.
        """
        if kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {kind!r}; expected one of {LOSS_KINDS}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
        b = x0.shape[0]
        if check:
            self._check_x(x0, "x0")
            self._check_cond(cond, b)
        if kind == "score" and type(self.coupling).__name__ != "IndependentCoupling":
            raise ValueError("score matching needs the independent coupling: with an OT coupling x_t given x0 "
                             "is not Gaussian, so the denoising score target is wrong")
        if t is not None and check:
            t = self._check_t(t, x0)
        if x1 is not None and check:
            self._check_x(x1, "x1")
        t, x1 = self.matching_noise(x0, kind, t=t, x1=x1)
        x1 = self.coupling.couple(x0, x1, cond)
        return matching_loss(lambda x, tt, k: self.predict_unchecked(x, tt, cond, k), self.path, x0, x1, t, kind,
                             weighting)

    def matching_noise(self, x0: Tensor, kind: LossKind = "flow", generator: torch.Generator | None = None,
                       t: Tensor | None = None, x1: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The times and noise :meth:`matching_loss` draws for ``x0`` when it is not given them, in its order (``t``
        uniform on the training interval, then ``x1`` standard normal; a given one is kept and draws nothing), from
        ``generator`` (None: the global RNG). Drawing them here and passing them in gives the same loss as drawing
        them inside, which is how seeds trained as one vectorized model keep their own random streams."""
        if t is None:
            t0, t1 = self._interval("velocity" if kind == "flow" else "noise")
            t = t0 + (t1 - t0) * draw(torch.rand, (x0.shape[0],), generator, device=x0.device, dtype=x0.dtype)
        if x1 is None:
            x1 = draw(torch.randn, x0.shape, generator, device=x0.device, dtype=x0.dtype)
        return t, x1

    # ------------------------------------------------------------------ sampling
    def _prepare(self, cond: Any, n: int | None, x1: Tensor | None, check: bool = True):
        """Returns (cond repeated per sample, number of rows, output shape prefix)."""
        if cond is None:
            if n is None and x1 is None:
                raise ValueError("an unconditional sample needs n (the number of samples) or x1")
            rows = n if x1 is None else x1.shape[0]
            if n is not None and x1 is not None and x1.shape[0] != n:
                raise ValueError(f"x1 has batch {x1.shape[0]} but n={n}")
            return None, rows, (rows,)
        b = batch_size_of(cond)
        if check:
            self._check_cond(cond, None)
        if n is None:
            return cond, b, (b,)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        idx = torch.arange(b, device=device_of(cond)).repeat_interleave(n)
        return index_cond(cond, idx), b * n, (b, n)

    def _noise(self, rows: int, t1: float, x1: Tensor | None, cond: Any, temperature: float = 1.0,
               check: bool = True, generator: torch.Generator | None = None) -> Tensor:
        if x1 is not None:
            if check:
                self._check_x(x1, "x1")
            if x1.shape[0] != rows:
                raise ValueError(f"x1 has batch {x1.shape[0]}; wanted {rows}")
            return x1
        p = next(self.parameters(), None)
        device = p.device if p is not None else (device_of(cond) if cond is not None else "cpu")
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        noise = draw(torch.randn, (rows, *self.x_shape), generator, device=device, dtype=dtype)
        return self._prior_std(t1) * temperature * noise

    def _prior_std(self, t1: float) -> float:
        """``path.prior_std(t1)``, computed once per t1 (a host value: kept out of compiled steps)."""
        if t1 not in self._prior_stds:
            self._prior_stds[t1] = self.path.prior_std(t1)
        return self._prior_stds[t1]

    @staticmethod
    def _likelihood_solver(solver: Any, functional: bool):
        solver = likelihood.ode_solver(solver)
        if functional and solver.needs_params:
            raise ValueError(f"functional=True needs a fixed-step solver (the graph is built by torch.func), "
                             f"got {solver!r}")
        return solver

    def _params_for(self, solver: Sampler) -> list:
        """The trainable parameters when ``solver`` needs them (adjoint methods), else nothing."""
        return [p for p in self.parameters() if p.requires_grad] if solver.needs_params else []

    def _sampler_interval(self, solver: Sampler, adjusted: bool) -> tuple[float, float]:
        """The interval a sampler integrates over (guidance and clipping work on the noise form)."""
        return self._interval("noise" if adjusted else solver.prediction)

    def solver_times(self, solver: Any = "euler", steps: int = 32, adjusted: bool = False) -> Tensor:
        """The distinct times, ascending, at which :meth:`sample` with this ``solver`` and ``steps`` evaluates the
        network (``adjusted``: sampling with ``guidance`` or ``clip_denoised``). A few-step sampler only ever reads
        the network at these times, so a loss that must hold where the sampler looks can be trained there, as a
        discrete-time DDPM is (Diffusion-QL). Found by running the solver once on a recording zero field."""
        solver = make_solver(solver)
        t0, t1 = self._sampler_interval(solver, adjusted)
        seen: list[float] = []

        def record(x, t):
            seen.append(float(t))
            return torch.zeros_like(x)

        with torch.no_grad(), torch.device("cpu"):  # host values (also when the model is built on "meta")
            solver.sample(record, self.path, torch.zeros(1, *self.x_shape), t1, t0, steps)
            return torch.tensor(sorted(set(seen)))

    def _run_sampler(self, cond, n, solver, steps, grad, x1, keep_trajectory, check=True, temperature=1.0,
                     guidance=None, generator=None, clip_denoised=None):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if clip_denoised is not None and not clip_denoised > 0:
            raise ValueError(f"clip_denoised must be > 0 (or None), got {clip_denoised}")
        solver = make_solver(solver)
        cond_r, rows, prefix = self._prepare(cond, n, x1, check)
        t0, t1 = self._sampler_interval(solver, guidance is not None or clip_denoised is not None)
        x1 = self._noise(rows, t1, x1, cond, temperature, check, generator)
        with torch.set_grad_enabled(grad):
            field = self.prediction_fn(cond_r, solver.prediction, guidance, clip_denoised)
            sol = solver.sample(field, self.path, x1, t1, t0, steps, keep_trajectory, self._params_for(solver))
        return sol, prefix

    def sample(self, cond: Any = None, n: int | None = None, solver: Any = "euler", steps: int = 32,
               grad: bool = False, x1: Tensor | None = None, check: bool = True, temperature: float = 1.0,
               guidance=None, generator: torch.Generator | None = None,
               clip_denoised: float | None = None) -> Tensor:
        """Draw x ~ p(. | cond) (or p(.)) by integrating from noise to data.

        Args:
            cond: condition with batch B, or None for an unconditional model.
            n: unconditional: number of samples (required unless x1 is given); conditional: samples per
                condition (None means one each).
            solver: name (``euler``, ``midpoint``, ``heun``, ``rk4``, ``sde``, ``dpm1``-``dpm3``,
                ``torchdiffeq:METHOD``) or a solver object.
            steps: number of solver steps.
            grad: keep the autograd graph through the solver (for policy gradients); False runs under
                ``torch.no_grad()``.
            x1: optional starting noise, ``(rows, *x_shape)``.
            check: validate the condition (host sync); False inside training steps and compiled acting.
            temperature: scale of the initial noise: 1 samples the model's distribution, 0 starts every sample from
                the prior's mean (for a Gaussian on a path with alpha(1) = 0 the samples' covariance scales by
                temperature^2). Ignored when ``x1`` is given.
            guidance: ``guidance(x, t, cond) -> grad_x log h_t(x)`` added to the score at every solver step, so the
                samples follow the tilted density ``p(x) h_0(x)`` when ``h_t`` is its exact intermediate energy
                (QGPO's energy guidance; see :meth:`prediction_fn`). ``cond`` is the condition repeated per sample.
            generator: draws the initial noise from this generator instead of the global one (reproducible samples
                that leave the global RNG alone). Stochastic solvers still use the global RNG for their steps.
            clip_denoised: clamp the denoised estimate x0 to [-c, c] at every solver step (see
                :meth:`prediction_fn`): samples of a bounded space stay in it, and gradients through the sampler
                stop where the estimate leaves it. None: off.

        Returns:
            ``(n, *x_shape)`` unconditional; ``(B, *x_shape)`` conditional with n None; else ``(B, n, *x_shape)``.
        """
        sol, prefix = self._run_sampler(cond, n, solver, steps, grad, x1, False, check, temperature, guidance,
                                        generator, clip_denoised)
        return sol.y[0].reshape(*prefix, *self.x_shape)

    def sample_trajectory(self, cond: Any = None, n: int | None = None, solver: Any = "euler", steps: int = 32,
                          grad: bool = False, x1: Tensor | None = None, temperature: float = 1.0) -> Trajectory:
        """Like :meth:`sample` but returns every intermediate state (for plots like the paper's Figure 3)."""
        sol, prefix = self._run_sampler(cond, n, solver, steps, grad, x1, True, temperature=temperature)
        xs = sol.trajectory[0]
        return Trajectory(xs=xs.reshape(xs.shape[0], *prefix, *self.x_shape), times=sol.times)

    # ------------------------------------------------------------------ likelihood (genpolicy.likelihood)
    def log_prob(self, x: Tensor, cond: Any = None, divergence: Divergence = "exact", steps: int = 32,
                 solver: Any = "rk4", grad: bool = False, probe: Probe = "gaussian", check: bool = True,
                 functional: bool = False, estimator: str = "exact") -> Tensor:
        """log p(x | cond) by the instantaneous change of variables (Eq 44), integrating data -> noise.

        Args:
            x: points, ``(B, *x_shape)``.
            cond: condition with batch B, or None.
            divergence: ``exact`` (d backward passes per evaluation; default, best for small d) or
                ``hutchinson`` (Eq 45, one probe drawn once per solve, unbiased).
            steps: solver steps.
            solver: an ODE solver name or object.
            grad: build the graph so that the result is differentiable w.r.t. parameters and ``x``.
            probe: Hutchinson probe distribution, ``gaussian`` or ``rademacher``.
            check: validate ``x`` (finite values: a host sync; training loops pass False).
            functional: build the graph with ``torch.func`` instead of ``torch.autograd`` (differentiable, for a
                caller under ``torch.func.grad`` or ``torch.compile(fullgraph=True)``; fixed-step solvers only).
            estimator: ``exact`` (the gradient of the computed value) or ``paper`` (GenerativeRL's: the drift's state
                detached, a Hutchinson probe per evaluation; :mod:`genpolicy.likelihood`).

        Returns:
            ``(B,)`` log-densities in nats.
        """
        if check:
            self._check_x(x)
            self._check_cond(cond, x.shape[0])
        solver = self._likelihood_solver(solver, functional)
        t0, t1 = self._interval("velocity")
        grid = uniform_grid(t0, t1, steps, x)
        noise_probe = likelihood.make_probe(divergence, probe, x, estimator)
        return likelihood.log_prob_from_data(self.prediction_fn(cond, "velocity"), x, grid, self._prior_std(t1),
                                             solver, noise_probe, grad, self._params_for(solver), functional,
                                             detach_state=estimator == "paper")

    def sample_with_log_prob(self, cond: Any = None, n: int | None = None, divergence: Divergence = "exact",
                             steps: int = 32, solver: Any = "euler", grad: bool = False,
                             x1: Tensor | None = None, probe: Probe = "gaussian", check: bool = True,
                             functional: bool = False) -> SampleWithLogProb:
        """Sample and compute log p of each sample on the same ODE solve (noise -> data), as GMPG needs.

        Arguments as in :meth:`sample` and :meth:`log_prob`.
        """
        solver = self._likelihood_solver(solver, functional)
        cond_r, rows, prefix = self._prepare(cond, n, x1, check)
        t0, t1 = self._interval("velocity")
        x1 = self._noise(rows, t1, x1, cond, check=check)
        noise_probe = likelihood.make_probe(divergence, probe, x1)
        grid = uniform_grid(t1, t0, steps, x1)
        x0, logp = likelihood.sample_with_log_prob(self.prediction_fn(cond_r, "velocity"), x1, grid,
                                                   self._prior_std(t1), solver, noise_probe, grad,
                                                   self._params_for(solver), functional)
        return SampleWithLogProb(x=x0.reshape(*prefix, *self.x_shape), log_prob=logp.reshape(prefix))

    def extra_repr(self) -> str:
        return f"path={self.path!r}, param={self.param!r}, x_shape={self.x_shape}, coupling={self.coupling!r}"
