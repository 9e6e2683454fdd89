"""Vectorized seeds (issue 14, item 4): a training stage of N seeds' runs in one process as one model.

Runs of one algorithm and task that differ only in their seed differ only in their initial weights, their minibatch
order and their random draws, so N of them can run as one network whose layers are N-member batched matmuls.
:class:`SeedStackedIQL` (the IQL critic: :class:`~genpolicy.nets.ensemble.EnsembleMLP`), :class:`SeedStackedMatching`
(a behaviour-cloning stage: ``torch.func.vmap`` over the stacked weights of any network, :class:`SeedStackedModule`),
:class:`SeedStackedGMPO` (GMPO's advantage-weighted policy stage, on it), :class:`SeedStackedActor` (BC's and IQL's
Gaussian actor stages) and :class:`SeedStackedTD3BC` (TD3+BC's one stage) are built *from* the N ordinary modules
that N single runs would build (each under its own seed); a :class:`~genpolicy.rl.algos.base.Stage` names its form
(``stack``), and :func:`genpolicy.train.train_stacked` draws each seed's minibatches from its own run's loop
generator and its other random draws (matching times and noise, smoothing noise) from its own copy of its run's
global RNG, so seed k follows its single run step for step: the losses add up over seeds, so each seed's gradient is
its own (gradient clipping takes each seed's own norm); Adam is element-wise, so one Adam over the stacked weights is
N Adams. What differs is the rounding of a batched matmul
(tests/test_seeds.py: equal to single runs to 1e-5 after 50 steps). ``unstack()`` writes the trained weights and
Adam state back into the N runs' modules, which then save, load and resume as ordinary ones.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn
from torch.nn.utils.stateless import _reparametrize_module

from ..nets.ensemble import EnsembleMLP
from .critics import IQLCritic, expectile_loss, polyak_
from .data import Batch

__all__ = ["SeedStackedIQL", "SeedStackedModule", "SeedStackedMatching", "SeedStackedGMPO", "SeedStackedActor",
           "SeedStackedTD3BC", "stack_iql_critics", "differ_beyond_seed", "stack_batches"]


class SeedStackedIQL(nn.Module):
    """N IQL critics as one: twin Qs as a 2N-member ensemble (seed k's heads are members 2k and 2k+1), V as an
    N-member ensemble, each with its Polyak target, one fused Adam per network (the single critic's settings).

    ``update(batch)`` takes a batch with a leading seed dimension, ``(N, B, ...)``, and does what
    :meth:`IQLCritic.update` does for every seed: V on the target twin minimum (expectile), then both Qs on
    ``r + gamma (1 - d) V(s')`` with the updated V, then the Polyak step (Eq 32)."""

    def __init__(self, critics: list[IQLCritic]):
        super().__init__()
        if not critics:
            raise ValueError("SeedStackedIQL needs at least one critic")
        cfg = critics[0].cfg
        if any(c.cfg != cfg for c in critics) or cfg.batched:
            raise ValueError("SeedStackedIQL stacks critics of one IQLConfig with separate (unbatched) twin Qs")
        self.cfg, self.n, self.critics = cfg, len(critics), list(critics)
        heads = [h for c in critics for h in (c.qf.q1, c.qf.q2)]
        target_heads = [h for c in critics for h in (c.q_target.q1, c.q_target.q2)]
        self.qf = EnsembleMLP.stack(heads)
        self.q_target = EnsembleMLP.stack(target_heads).requires_grad_(False)
        self.vf = EnsembleMLP.stack([c.vf for c in critics])
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=cfg.lr, fused=True)
        self.v_opt = torch.optim.Adam(self.vf.parameters(), lr=cfg.lr, fused=True)

    def _twin(self, net: EnsembleMLP, obs: Tensor, act: Tensor) -> Tensor:
        """Both heads of every seed, ``(N, 2, B)``, for ``obs``/``act`` ``(N, B, .)``."""
        sa = torch.cat([obs, act], dim=-1).repeat_interleave(2, dim=0)  # seed k's rows to members 2k, 2k+1
        return net(sa).squeeze(-1).reshape(self.n, 2, -1)

    def update(self, batch: Batch, gens: list[torch.Generator] | None = None) -> dict[str, Tensor]:
        """One IQL step for every seed; metrics are ``(N,)`` tensors (seed k's value at k). (An IQL step draws no
        random numbers, so ``gens`` is not used.)"""
        cfg = self.cfg
        with torch.no_grad():
            q_t = self._twin(self.q_target, batch.obs, batch.actions).min(dim=1).values
        v = self.vf(batch.obs).squeeze(-1)
        v_losses = expectile_loss(q_t - v, cfg.expectile).mean(dim=1)  # each seed's own mean, as a single run
        self.v_opt.zero_grad(set_to_none=True)
        v_losses.sum().backward()  # the sum separates: seed k's weights get seed k's gradient
        self.v_opt.step()
        with torch.no_grad():
            target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * self.vf(batch.next_obs).squeeze(-1)
        qs = self._twin(self.qf, batch.obs, batch.actions)
        q_losses = ((qs - target[:, None]) ** 2).mean(dim=2).sum(dim=1)  # sum over the twin heads (q_loss)
        self.q_opt.zero_grad(set_to_none=True)
        q_losses.sum().backward()
        self.q_opt.step()
        polyak_(self.q_target, self.qf, cfg.polyak)
        return {"v_loss": v_losses.detach(), "q_loss": q_losses.detach(), "v_mean": v.detach().mean(dim=1),
                "q_mean": qs[:, 0].detach().mean(dim=1)}

    @torch.no_grad()
    def unstack(self, critics: list[IQLCritic] | None = None) -> None:
        """Write every seed's weights, target weights and Adam state back into ``critics`` (None: the ones it was
        built from; or critics of the same shapes), so that each saves, loads and resumes as a single run's critic."""
        critics = self.critics if critics is None else critics
        if len(critics) != self.n:
            raise ValueError(f"unstack needs {self.n} critics, got {len(critics)}")
        for k, c in enumerate(critics):
            for ens, ens_opt, nets, opt in ((self.qf, self.q_opt, [c.qf.q1, c.qf.q2], c.q_opt),
                                            (self.vf, self.v_opt, [c.vf], c.v_opt),
                                            (self.q_target, None, [c.q_target.q1, c.q_target.q2], None)):
                for j, net in enumerate(nets):
                    member = k * len(nets) + j
                    for p, s in zip(net.parameters(), ens.parameters(), strict=True):
                        p.copy_(_member(s, member, p))
                        st = ens_opt.state.get(s) if ens_opt is not None else None
                        if st:
                            opt.state[p] = {"step": st["step"].clone(),
                                            "exp_avg": _member(st["exp_avg"], member, p),
                                            "exp_avg_sq": _member(st["exp_avg_sq"], member, p)}


def differ_beyond_seed(cfgs: list) -> bool:
    """Whether run configs differ in anything but their seed (runs that do cannot be trained as one model)."""
    same = dataclasses.replace(cfgs[0], seed=0)
    return any(dataclasses.replace(c, seed=0) != same for c in cfgs)


def stack_iql_critics(critics: list) -> "SeedStackedIQL | None":
    """The critic stage's form across seeds: :class:`SeedStackedIQL` of IQL critics with separate twin Qs, else None
    (a batched critic, or another kind of critic, trains alone)."""
    if all(type(c) is IQLCritic and not c.cfg.batched for c in critics):
        return SeedStackedIQL(critics)
    return None


class SeedStackedModule:
    """A stage that trains one module per run by a loss of the batch, for N runs as one model: the modules' parameters
    stacked along a leading seed dimension and evaluated with ``torch.func.vmap`` over a copy of the first run's
    module (any network), one fused Adam over the stacked parameters (the runs' Adam settings and state), each seed's
    gradient norm clipped to ``clip`` (0: off) as ``clip_grad_norm_`` in its single run. Subclasses give one seed's
    loss (``_seed_loss``) and its inputs (``_inputs``): :class:`SeedStackedMatching`, :class:`SeedStackedActor`.

    ``parts``: each run's ``(module, optimizer)`` first. ``update(batch, gens)``: ``batch`` ``(N, B, ...)``;
    ``gens[k]`` stands in for seed k's global RNG (the draws its single run's step makes, drawn in the same order)."""

    def __init__(self, parts: list, clip: float = 0.0, name: str = "policy"):
        if not parts:
            raise ValueError(f"{type(self).__name__} needs at least one run")
        models, opts = [p[0] for p in parts], [p[1] for p in parts]
        shapes = [[tuple(p.shape) for p in m.parameters()] for m in models]
        if any(sh != shapes[0] for sh in shapes):
            raise ValueError(f"{type(self).__name__}: the runs' models differ in shape")
        groups = [o.param_groups for o in opts]
        if any(len(g) != 1 or {k: v for k, v in g[0].items() if k != "params"}
               != {k: v for k, v in groups[0][0].items() if k != "params"} for g in groups):
            raise ValueError(f"{type(self).__name__}: the runs' optimizers differ")
        self.models, self.opts, self.n, self.clip, self.name = models, opts, len(parts), clip, name
        self.model = copy.deepcopy(models[0])  # the template: its own tensors are swapped out in every call
        self.names = [k for k, _ in self.model.named_parameters()]
        self.params = {k: _stack([m.get_parameter(k) for m in models]).requires_grad_() for k in self.names}
        self.buffers = {k: _stack([m.get_buffer(k) for m in models]) for k, _ in self.model.named_buffers()}
        g = groups[0][0]
        self.opt = torch.optim.Adam(list(self.params.values()), lr=g["lr"], betas=g["betas"], eps=g["eps"],
                                    fused=True)
        states = [[o.state.get(p) for p in m.parameters()] for m, o in zip(models, opts)]
        if any(states[0]):  # runs that have taken steps of this stage: their Adam state, stacked
            for j, sp in enumerate(self.params.values()):
                self.opt.state[sp] = {"step": states[0][j]["step"].clone(),
                                      "exp_avg": _stack([st[j]["exp_avg"] for st in states]),
                                      "exp_avg_sq": _stack([st[j]["exp_avg_sq"] for st in states])}

    def _inputs(self, batch: Batch, gens: list[torch.Generator]) -> tuple[Tensor, ...]:
        """The stacked ``(N, ...)`` tensors ``_seed_loss`` takes, seed by seed (here the states and actions)."""
        return batch.obs, batch.actions

    def _extra(self) -> dict:
        """Stacked tensors ``_seed_loss`` reads besides the module's, seed by seed (none here)."""
        return {}

    def _seed_loss(self, params: dict, buffers: dict, extra: dict, *inputs) -> tuple[Tensor, dict]:
        """One seed's loss and metrics, as its single run's stage computes them (under ``vmap``)."""
        raise NotImplementedError

    def update(self, batch: Batch, gens: list[torch.Generator]) -> dict[str, Tensor]:
        """One step for every seed; metrics are ``(N,)`` tensors (seed k's value at k)."""
        if len(gens) != self.n:
            raise ValueError(f"update needs {self.n} generators, got {len(gens)}")
        return self._metrics(*self.step(self._inputs(batch, gens), self._extra()))

    def step(self, inputs: tuple, extra: dict) -> tuple[Tensor, dict, Tensor | None]:
        """One optimizer step of every seed on ``_seed_loss(params, buffers, extra, *inputs)``: the losses, the
        auxiliary values (``(N, ...)``, detached) and each seed's gradient norm before clipping (None: no clip)."""
        loss, aux = torch.func.vmap(self._seed_loss)(self.params, self.buffers, extra, *inputs)
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # the sum separates: seed k's parameters get seed k's gradient
        norms = None
        if self.clip > 0:  # each seed's own total norm, as clip_grad_norm_ in its single run
            grads = [p.grad for p in self.params.values()]
            norms = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.reshape(self.n, -1), dim=1) for g in grads], dim=1), dim=1)
            scale = torch.clamp(self.clip / (norms + 1e-6), max=1.0)
            for g in grads:
                g.mul_(scale.reshape(-1, *([1] * (g.dim() - 1))))
        self.opt.step()
        self._after_step()
        return loss.detach(), {k: v.detach() for k, v in aux.items()}, norms

    def _after_step(self) -> None:
        pass

    def _metrics(self, loss: Tensor, aux: dict, norms: Tensor | None) -> dict[str, Tensor]:
        return {f"{self.name}_loss": loss}

    @torch.no_grad()
    def unstack(self) -> None:
        """Write every seed's weights and Adam state back into its run."""
        for k, (m, o) in enumerate(zip(self.models, self.opts)):
            for name, p in m.named_parameters():
                p.copy_(self.params[name][k])
            for p, sp in zip(m.parameters(), self.params.values(), strict=True):
                st = self.opt.state.get(sp)
                if st:
                    o.state[p] = {"step": st["step"].clone(), "exp_avg": st["exp_avg"][k].clone(),
                                  "exp_avg_sq": st["exp_avg_sq"][k].clone()}


class SeedStackedMatching(SeedStackedModule):
    """A (weighted) matching stage of N runs as one model (:class:`SeedStackedModule` over the generative models).
    Plain, it is a behaviour-cloning stage (:func:`~genpolicy.rl.algos.common.behaviour_cloning_stage`: Eq 3, 23,
    26); :class:`SeedStackedGMPO` adds each seed's weights. ``gens[k]`` gives seed k's matching times and noise, the
    draws its single run makes inside ``matching_loss``."""

    def __init__(self, parts: list, kind: str = "flow", weighting: str = "vanilla", clip: float = 0.0,
                 name: str = "behaviour"):
        super().__init__(parts, clip, name)
        self.kind, self.weighting = kind, weighting

    def _inputs(self, batch: Batch, gens: list[torch.Generator]) -> tuple[Tensor, ...]:
        draws = [self.model.matching_noise(batch.actions[k], self.kind, generator=g) for k, g in enumerate(gens)]
        return batch.obs, batch.actions, torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])

    def _weights(self, extra, obs: Tensor, actions: Tensor) -> tuple[Tensor | None, dict]:
        """One seed's weights of its batch and metrics to report (none: plain matching)."""
        return None, {}

    def _seed_loss(self, params, buffers, extra, obs, actions, t, x1):
        from .algos.common import weighted_matching_loss

        w, aux = self._weights(extra, obs, actions)
        with _reparametrize_module(self.model, {**params, **buffers}):
            loss, out = weighted_matching_loss(self.model, actions, obs, w, self.kind, self.weighting, t, x1)
        return loss, {"per_sample": out["per_sample"], **aux}


class SeedStackedActor(SeedStackedModule):
    """The Gaussian actor stage of BC (``-log pi(a|s)``, no critic) or of IQL (advantage-weighted,
    ``-min(exp(beta A), clamp) log pi(a|s)`` with each seed's own frozen critic) for N runs as one model.
    ``parts``: each run's ``(actor, optimizer)`` (BC) or ``(actor, optimizer, critic)`` (IQL). Neither step draws
    random numbers."""

    def __init__(self, parts: list, beta: float = 0.0, clamp: float = 100.0):
        super().__init__(parts, 0.0, "policy")
        self.beta, self.clamp = beta, clamp
        critics = [p[2] for p in parts if len(p) > 2]
        self.critic, self.critic_state = _frozen_stack(critics) if critics else (None, {})

    def _extra(self) -> dict:
        return self.critic_state

    def _seed_loss(self, params, buffers, critic_state, obs, actions):
        from .algos.bc import _nll
        from .algos.common import advantage_weights
        from .algos.iql import _awr

        if self.critic is None:  # BC's loss (bc.py)
            with _reparametrize_module(self.model, {**params, **buffers}):
                return _nll(self.model, obs, actions)
        with torch.no_grad(), _reparametrize_module(self.critic, critic_state):  # IQL's weights (iql.py)
            adv = self.critic.advantage(obs, actions)
            w = advantage_weights(adv, self.beta, self.clamp)
        with _reparametrize_module(self.model, {**params, **buffers}):
            loss, _ = _awr(self.model, obs, actions, w)
        return loss, {"w": w, "adv": adv}

    def _metrics(self, loss: Tensor, aux: dict, norms: Tensor | None) -> dict[str, Tensor]:
        if self.critic is None:
            return {"bc_loss": loss, "log_std_mean": self.params["log_std"].detach().mean(dim=1)}
        return {"actor_loss": loss, "weight_mean": aux["w"].mean(dim=1), "adv_mean": aux["adv"].mean(dim=1)}


class _StackedTwinQ(SeedStackedModule):
    """TD3+BC's twin critics of N runs: TD regression on each seed's own targets (td3bc.py, twin_q_loss)."""

    def _seed_loss(self, params, buffers, extra, obs, actions, target):
        from .critics import twin_q_loss

        with _reparametrize_module(self.model, {**params, **buffers}):
            return twin_q_loss(self.model, obs, actions, target)


class _StackedTD3Actor(SeedStackedModule):
    """TD3+BC's actors of N runs: ``-lambda Q1(s, pi(s)) + (pi(s) - a)^2`` through each seed's own critic, whose
    (stacked, current) weights come in ``extra`` and are not stepped (td3bc.py, _actor_loss). ``qf``: the critics'
    stacked model's template (its tensors are swapped out in every call, so the two stacks can share it)."""

    def __init__(self, parts: list, qf: nn.Module, alpha: float):
        super().__init__(parts, 0.0, "actor")
        self.qf, self.alpha = qf, alpha

    def _seed_loss(self, params, buffers, q_state, obs, actions):
        from .algos.td3bc import _actor_loss

        with _reparametrize_module(self.model, {**params, **buffers}), _reparametrize_module(self.qf, q_state):
            return _actor_loss(self.model, self.qf, obs, actions, self.alpha)


class SeedStackedTD3BC:
    """TD3+BC's one stage (twin critics with target policy smoothing, the actor and the Polyak targets every
    ``policy_freq`` critic steps) for N runs as one model; seed k's smoothing noise is drawn from ``gens[k]`` (its
    single run draws it from the global RNG). Built from the N TD3+BC runs (settings equal but the seed)."""

    def __init__(self, algos: list):
        if not algos or differ_beyond_seed([a.cfg for a in algos]):
            raise ValueError("SeedStackedTD3BC stacks TD3+BC runs whose settings differ only in the seed")
        if len({a._updates for a in algos}) != 1:
            raise ValueError("SeedStackedTD3BC: the runs are at different steps")
        self.algos, self.cfg, self.n, self.updates = list(algos), algos[0].cfg, len(algos), algos[0]._updates
        self.q = _StackedTwinQ([(a.qf, a.q_opt) for a in algos], 0.0, "q")
        self.pi = _StackedTD3Actor([(a.actor, a.actor_opt) for a in algos], self.q.model, self.cfg.alpha)
        self.actor_target, self.actor_target_state = _frozen_stack([a.actor_target for a in algos])
        self.q_target, self.q_target_state = _frozen_stack([a.q_target for a in algos])

    def _target_q(self, state, obs, act):
        with _reparametrize_module(self.q_target, state):
            return self.q_target(obs, act)

    def _target_action(self, state, obs):
        with _reparametrize_module(self.actor_target, state):
            return self.actor_target(obs)

    def update(self, batch: Batch, gens: list[torch.Generator]) -> dict[str, Tensor]:
        """One TD3+BC step for every seed (td3bc.py: TD3BC.update); metrics are ``(N,)`` tensors."""
        cfg = self.cfg
        with torch.no_grad():  # target policy smoothing, each seed's noise from its own stream
            noise = torch.stack([torch.randn(batch.actions.shape[1:], generator=g, device=batch.actions.device,
                                             dtype=batch.actions.dtype) for g in gens])
            noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_a = (torch.func.vmap(self._target_action)(self.actor_target_state, batch.next_obs) + noise).clamp(
                -1.0, 1.0)
            q_next = torch.func.vmap(self._target_q)(self.q_target_state, batch.next_obs, next_a)
            target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * q_next
        loss_q, aux_q, _ = self.q.step((batch.obs, batch.actions, target), {})
        self.updates += 1
        m = {"q_loss": loss_q, "q_mean": aux_q["q_mean"]}
        if self.updates % cfg.policy_freq == 0:
            q_state = {k: v.detach() for k, v in self.q.params.items()} | self.q.buffers
            loss_pi, aux, _ = self.pi.step((batch.obs, batch.actions), q_state)
            with torch.no_grad():
                for target, source in ((self.q_target_state, self.q.params), (self.actor_target_state, self.pi.params)):
                    names = list(source)
                    torch._foreach_lerp_([target[k] for k in names], [source[k] for k in names], cfg.tau)
            m.update(actor_loss=loss_pi, bc_mse=aux["bc_mse"], lam=aux["lambda"])
        return m

    @torch.no_grad()
    def unstack(self) -> None:
        """Write every seed's networks, targets, Adam states and update count back into its run."""
        self.q.unstack()
        self.pi.unstack()
        for k, a in enumerate(self.algos):
            for net, state in ((a.actor_target, self.actor_target_state), (a.q_target, self.q_target_state)):
                for name, p in net.named_parameters():
                    p.copy_(state[name][k])
            a._updates = self.updates
            a.updates.fill_(self.updates)


def _frozen_stack(modules: list[nn.Module]) -> tuple[nn.Module, dict]:
    """A template copy of ``modules[0]`` and every parameter and buffer of ``modules`` stacked along a leading seed
    dimension (frozen: read under ``_reparametrize_module``, e.g. each seed's critic)."""
    template = copy.deepcopy(modules[0])
    state = {k: _stack([m.get_parameter(k) for m in modules]) for k, _ in template.named_parameters()}
    return template, state | {k: _stack([m.get_buffer(k) for m in modules]) for k, _ in template.named_buffers()}


class SeedStackedGMPO(SeedStackedMatching):
    """GMPO's advantage-weighted policy stage (Eq 7) of N runs as one model: :class:`SeedStackedMatching` over the
    policies, each seed weighting its batch by its own critic's advantages (the critics stacked, frozen), with the
    policies' EMA when the runs keep one. Built from the N GMPO runs (awr variant, settings equal but the seed)."""

    def __init__(self, algos: list):
        if not algos:
            raise ValueError("SeedStackedGMPO needs at least one run")
        cfg = algos[0].cfg
        if differ_beyond_seed([a.cfg for a in algos]) or cfg.variant != "awr":
            raise ValueError("SeedStackedGMPO stacks awr-variant GMPO runs whose settings differ only in the seed")
        super().__init__([(a.policy, a.policy_opt) for a in algos], cfg.loss, cfg.weighting, cfg.grad_clip, "policy")
        self.algos, self.cfg = list(algos), cfg
        self.critic, self.critic_state = _frozen_stack([a.critic for a in algos])
        self.ema = None
        if algos[0].policy_ema is not None:
            self.ema = {k: _stack([a.policy_ema.get_parameter(k) for a in algos]) for k in self.names}

    def _extra(self) -> dict:
        return self.critic_state

    def _weights(self, critic_state, obs: Tensor, actions: Tensor) -> tuple[Tensor, dict]:
        from .algos.gmpo import awr_weights

        with torch.no_grad(), _reparametrize_module(self.critic, critic_state):
            adv = self.critic.advantage(obs, actions)
            w = awr_weights(adv, self.cfg)
        return w, {"w": w, "adv": adv}

    def _after_step(self) -> None:
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.values()), list(self.params.values()), 1.0 - self.cfg.ema_decay)

    def _metrics(self, loss: Tensor, aux: dict, norms: Tensor | None) -> dict[str, Tensor]:
        w = aux["w"]
        m = {"policy_loss": loss, "matching_loss": aux["per_sample"].mean(dim=1), "weight_mean": w.mean(dim=1),
             "weight_max": w.amax(dim=1), "adv_mean": aux["adv"].mean(dim=1)}
        return m | ({"grad_norm": norms} if norms is not None else {})

    @torch.no_grad()
    def unstack(self) -> None:
        """Write every seed's policy (and EMA) weights and Adam state back into its run."""
        super().unstack()
        if self.ema is not None:
            for k, a in enumerate(self.algos):
                for name, p in a.policy_ema.named_parameters():
                    p.copy_(self.ema[name][k])


def _stack(tensors: list[Tensor]) -> Tensor:
    return torch.stack([t.detach() for t in tensors]).contiguous()


def _member(stacked: Tensor, i: int, like: Tensor) -> Tensor:
    """Member ``i`` of a stacked ensemble tensor in the layout of the single layer's tensor ``like``: a linear
    weight is stored transposed, ``(N, in, out)`` for ``(out, in)``; biases and LayerNorm affines as ``(N, 1, h)``."""
    x = stacked[i]
    x = x.T if like.dim() == 2 else x.reshape(like.shape)
    return x.clone(memory_format=torch.contiguous_format)


def stack_batches(parts: list[Batch]) -> Batch:
    """Per-seed minibatches (each drawn with its seed's own generator, as its single run's loop draws it) stacked
    along a new leading seed dimension."""
    return Batch(*(torch.stack([getattr(b, f.name) for b in parts]) for f in dataclasses.fields(Batch)))
