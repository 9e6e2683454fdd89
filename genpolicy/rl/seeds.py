"""Vectorized seeds (issue 14, item 4): the IQL critics of N seeds trained in one process as one model.

Every suite seed trains its own IQL critic first; they differ only in their initial weights and their minibatch
order, so N of them can run as one network whose layers are N-member batched matmuls
(:class:`~genpolicy.nets.ensemble.EnsembleMLP`). :class:`SeedStackedIQL` is built *from* the N ordinary
:class:`~genpolicy.rl.critics.IQLCritic` s that N single runs would build (each under its own seed), and
:func:`genpolicy.train.train_critics_stacked` draws each seed's minibatches from its own run's loop generator, so
seed k follows its single run step for step: the losses add up over seeds, so each seed's gradient is its own; Adam is
element-wise, so one Adam over the stacked weights is N Adams. What differs is the rounding of a batched matmul
(tests/test_seeds.py: equal to single runs to 1e-5 after 50 steps). :meth:`SeedStackedIQL.unstack` writes the
trained weights and Adam state back into the N critics, which then save and load as ordinary ones.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ..nets.ensemble import EnsembleMLP
from .critics import IQLCritic, expectile_loss, polyak_
from .data import Batch

__all__ = ["SeedStackedIQL", "stack_batches"]


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
        self.cfg, self.n = cfg, len(critics)
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

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One IQL step for every seed; metrics are ``(N,)`` tensors (seed k's value at k)."""
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
    def unstack(self, critics: list[IQLCritic]) -> None:
        """Write every seed's weights, target weights and Adam state back into ``critics`` (the ones it was built
        from, or critics of the same shapes), so that each saves, loads and resumes as a single run's critic."""
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
