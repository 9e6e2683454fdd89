"""Side by side with GenerativeRL (benchmark, not a test): the GMPO training steps of the paper's own code and of
genpolicy on the same machine, in one process, timed in alternation (machines are noisy: compare the ratio).

Both sides get the same network shapes (GenerativeRL's walker2d-medium GVP config: a TemporalSpatialResidualNet
512-256-128 with a 32-wide Gaussian Fourier time embedding; genpolicy's `unet`, the same architecture), the same
IQL critic (twin Q and V, 2x256), the same batch size, and batches drawn on the device by genpolicy's sampler, so
GenerativeRL's replay-buffer loading is *not* counted (in its loop it adds to its step). GenerativeRL's steps are
its training loop's lines as written (grl/algorithms/gmpo.py: `critic.v_loss`, `critic.iql_q_loss`, the Polyak
loop, `policy_optimization_loss_by_advantage_weighted_regression`, Adam, and the per-step `.item()` of its metric
sums); genpolicy's are the stage updates its loop calls (eager, and compiled with `--compile on`).

GenerativeRL is not a dependency: run this with an environment that has it. On this CPU machine:

    python3.11 -m venv /work/grl-venv && . /work/grl-venv/bin/activate
    pip install torch==2.13.0 && echo torch==2.13.0 > /tmp/c.txt
    pip install -c /tmp/c.txt "numpy<=1.26.4" easydict rich tensordict torchrl di-treetensor torchdyn torchsde POT \\
        beartype scipy matplotlib tqdm pyyaml h5py gym
    # GenerativeRL's source (github.com/opendilab/GenerativeRL; its PyPI 0.0.1 lacks modules its gmpo.py imports)
    PYTHONPATH=/path/to/GenerativeRL:. python benchmarks/research/vs_generativerl.py --threads 1 --batch 256 1024

GenerativeRL imports wandb and torchvision when its package loads (logging; a MaxViT backbone GMPO does not
build). Where they are missing or unusable (PyPI's torchvision wheel needs a CUDA torch), `_stand_ins` registers
empty modules for the names it imports, after importing the libraries that would mistake them for the real ones.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

_here = Path(__file__).resolve()
sys.path[:0] = [str(_here.parents[2]), str(_here.parents[1])]  # genpolicy, harness

OBS, ACT = 17, 6


def _stand_ins() -> None:
    """Empty modules for what GenerativeRL imports but GMPO never uses, where the real ones cannot load."""
    def usable(name):
        try:
            importlib.import_module(name)
            return True
        except Exception:  # noqa: BLE001 - missing, or a wheel built for another torch
            return False

    import torchdyn.core  # noqa: F401 (these check find_spec("torchvision"): import them before any stand-in)
    import torchrl.data  # noqa: F401

    class _Any:
        def __init__(self, *a, **k):
            pass

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = m

    if not usable("wandb"):
        stub("wandb")
    if not usable("torchvision"):
        for name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[name]
        stub("torchvision")
        stub("torchvision.models")
        stub("torchvision.models._api", WeightsEnum=_Any)
        stub("torchvision.models._meta", _IMAGENET_CATEGORIES=[])
        stub("torchvision.models._utils", _ovewrite_named_param=lambda *a, **k: None)
        stub("torchvision.ops")
        stub("torchvision.ops.misc", Conv2dNormActivation=_Any, SqueezeExcitation=_Any)
        stub("torchvision.ops.stochastic_depth", StochasticDepth=_Any)
        stub("torchvision.utils", _log_api_usage_once=lambda *a, **k: None)


def grl_policy(device: str):
    """GenerativeRL's GMPOPolicy as its walker2d-medium GVP config builds it (grl_pipelines/benchmark/gmpo/gvp)."""
    from easydict import EasyDict
    from grl.algorithms.gmpo import GMPOPolicy

    t_dim = 32
    model = dict(device=device, x_size=ACT, solver=dict(type="ODESolver", args=dict(library="torchdiffeq")),
                 path=dict(type="gvp"), reverse_path=dict(type="gvp"),
                 model=dict(type="velocity_function", args=dict(
                     t_encoder=dict(type="GaussianFourierProjectionTimeEncoder",
                                    args=dict(embed_dim=t_dim, scale=30.0)),
                     backbone=dict(type="TemporalSpatialResidualNet", args=dict(
                         hidden_sizes=[512, 256, 128], output_dim=ACT, t_dim=t_dim, condition_dim=OBS,
                         condition_hidden_dim=32, t_condition_hidden_dim=128)))))
    critic = dict(device=device, q_alpha=1.0,
                  DoubleQNetwork=dict(backbone=dict(type="ConcatenateMLP", args=dict(
                      hidden_sizes=[ACT + OBS, 256, 256], output_size=1, activation="relu"))),
                  VNetwork=dict(backbone=dict(type="MultiLayerPerceptron", args=dict(
                      hidden_sizes=[OBS, 256, 256], output_size=1, activation="relu"))))
    cfg = EasyDict(dict(device=device, model_type="DiffusionModel", model_loss_type="flow_matching", model=model,
                        critic=critic))
    return GMPOPolicy(cfg).to(device)


class GRLSteps:
    """GenerativeRL's critic and guided-policy steps, line for line from its GMPOAlgorithm.train (walker2d config:
    critic lr 3e-4, tau 0.7, discount 0.99, momentum 0.005; policy lr 1e-4, beta 8, clamp 100)."""

    def __init__(self, device: str):
        self.policy = grl_policy(device)
        critic = self.policy.critic
        self.q_opt = torch.optim.Adam(critic.q.parameters(), lr=3e-4)
        self.v_opt = torch.optim.Adam(critic.v.parameters(), lr=3e-4)
        self.pi_opt = torch.optim.Adam(self.policy.guided_model.parameters(), lr=1e-4)
        self.sums = {"q_loss": 0.0, "q": 0.0, "v_loss": 0.0, "policy_loss": 0.0, "weight": 0.0}

    def critic_step(self, b) -> None:
        critic = self.policy.critic
        v_loss, next_v = critic.v_loss(state=b.obs, action=b.actions, next_state=b.next_obs, tau=0.7)
        self.v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_opt.step()
        q_loss, q, q_target = critic.iql_q_loss(state=b.obs, action=b.actions, reward=b.rewards[:, None],
                                                done=b.dones[:, None], next_v=next_v, discount=0.99)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        for param, target_param in zip(critic.q.parameters(), critic.q_target.parameters()):
            target_param.data.copy_(0.005 * param.data + (1 - 0.005) * target_param.data)
        self.sums["q_loss"] += q_loss.item()
        self.sums["q"] += q.mean().item()
        self.sums["v_loss"] += v_loss.item()

    def policy_step(self, b) -> None:
        loss, weight, clamped_weight, clamped_ratio = \
            self.policy.policy_optimization_loss_by_advantage_weighted_regression(b.actions, b.obs, beta=8.0,
                                                                                  weight_clamp=100.0)
        self.pi_opt.zero_grad()
        loss.backward()
        self.pi_opt.step()
        self.sums["policy_loss"] += loss.item()
        self.sums["weight"] += float(weight)


def ours(device: str, compiled: bool):
    """genpolicy's critic and policy stage updates for the same shapes (the loop's functions: eager or compiled)."""
    from genpolicy.rl.algos import GMPOConfig, build_algorithm
    from genpolicy.train import stage_update

    cfg = GMPOConfig(device=device, net="unet", path="gvp", critic_hidden=(256, 256), beta=8.0, policy_lr=1e-4,
                     compile="on" if compiled else "off")
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", OBS, ACT, cfg).to(device)
    stages = {s.name: s for s in algo.stages()}
    return algo, {name: stage_update(algo, stages[name]) for name in ("critic", "policy")}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    p.add_argument("--steps", type=int, default=None, help="timed steps per round (default: 200 / batch-scaled)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per row (median)")
    p.add_argument("--compile", choices=["off", "on"], default="off", help="also time genpolicy compiled")
    p.add_argument("--out", default="runs/vs_generativerl.json")
    ns = p.parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)
    _stand_ins()
    import grl  # noqa: F401  (fails here, in one line, if GenerativeRL is not importable)

    from harness import synthetic_data, sync  # benchmarks/harness.py: random data of the task's shapes on the device

    from torch.utils.flop_counter import FlopCounterMode

    dev = ns.device
    data = synthetic_data(17, 6, dev)  # walker2d's shapes
    results = {"device": torch.cuda.get_device_name() if dev.startswith("cuda") else platform.processor() or
               platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": []}
    gen = torch.Generator(device=dev).manual_seed(0)
    for batch in ns.batch:  # fresh models per batch size (a compiled step is specialized to its shapes)
        torch._dynamo.reset()
        grl_steps = GRLSteps(dev)
        sides = {"GenerativeRL": {"critic": grl_steps.critic_step, "policy": grl_steps.policy_step}}
        algo, sides["genpolicy eager"] = ours(dev, False)
        if ns.compile == "on":
            sides["genpolicy compiled"] = ours(dev, True)[1]
        results["parameters"] = {
            "GenerativeRL policy network": n_params(grl_steps.policy.guided_model),
            "genpolicy policy network": n_params(algo.policy),
            "GenerativeRL critic (q + v)": n_params(grl_steps.policy.critic.q) + n_params(grl_steps.policy.critic.v),
            "genpolicy critic (q + v)": n_params(algo.critic.qf) + n_params(algo.critic.vf)}
        steps = ns.steps or max(5, 200 * 256 // batch)
        for stage in ("critic", "policy"):
            rates, mflop = {name: [] for name in sides}, {}
            for name, s in sides.items():  # warm-up (and compile), then one step's FLOPs (eager sides)
                for _ in range(3):
                    s[stage](data.sample(batch, generator=gen))
                if "compiled" not in name:
                    with FlopCounterMode(display=False) as fc:
                        s[stage](data.sample(batch, generator=gen))
                    mflop[name] = round(fc.get_total_flops() / 1e6, 1)
            sync(dev)
            for _ in range(ns.rounds):
                for name, s in sides.items():
                    fn = s[stage]
                    t = time.perf_counter()
                    for _ in range(steps):
                        out = fn(data.sample(batch, generator=gen))
                    if isinstance(out, dict):
                        float(next(iter(out.values())))
                    sync(dev)
                    rates[name].append(steps / (time.perf_counter() - t))
            row = {"stage": stage, "batch": batch, **{k: round(float(np.median(v)), 1) for k, v in rates.items()},
                   "mflop_per_step": mflop}
            row["speedup_eager"] = round(row["genpolicy eager"] / row["GenerativeRL"], 2)
            if "genpolicy compiled" in row:
                row["speedup_compiled"] = round(row["genpolicy compiled"] / row["GenerativeRL"], 2)
            print(json.dumps(row), flush=True)
            results["rows"].append(row)
    names = list(sides)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\ndevice {results['device']}, torch {results['torch']}, {results['threads']} threads; parameters: "
          f"{json.dumps(results['parameters'])}\n")
    print("| step | batch | " + " | ".join(f"{n} steps/s" for n in names) + " | genpolicy / GenerativeRL | "
          "MFLOP/step GenerativeRL / genpolicy |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for r in results["rows"]:
        best = max(r[n] for n in names[1:])
        f = r["mflop_per_step"]
        print(f"| {r['stage']} | {r['batch']} | " + " | ".join(str(r[n]) for n in names) +
              f" | {best / r['GenerativeRL']:.2f}x | {f['GenerativeRL']} / {f['genpolicy eager']} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
