"""A complete algorithm in one file: importing it makes ``genpolicy train toybc`` and ``load_policy`` work."""

from dataclasses import dataclass
from typing import ClassVar

import torch

from genpolicy.nets import mlp
from genpolicy.rl.algos import Algorithm, RunConfig, Stage, register
from genpolicy.rl.algos.common import optimizer_step


@dataclass
class ToyBCConfig(RunConfig):
    bc_steps: int = 50
    """behaviour-cloning steps"""

    stage_steps: ClassVar[tuple[str, ...]] = ("bc_steps",)  # may grow when a run resumes


@register
class ToyBC(Algorithm):
    """Deterministic behaviour cloning by mean squared error (a test algorithm)."""

    name, Config = "toybc", ToyBCConfig

    def __init__(self, obs_dim, act_dim, cfg, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.net = mlp(obs_dim, act_dim, (32, 32))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def optimizers(self):
        return {"opt": self.opt}

    def stages(self):
        return [Stage("bc", self.cfg.bc_steps, self.update, evaluates=True)]

    def update(self, batch):
        loss = ((self.net(batch.obs) - batch.actions) ** 2).mean()
        optimizer_step(self.opt, loss)
        return {"bc_loss": loss.detach()}

    def act_normalized(self, obs):
        return self.net(obs)
