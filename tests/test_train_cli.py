"""Training loop: SIGKILL + resume equals an uninterrupted run; CLI smoke of every stage; deployment."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from genpolicy.cli import main
from genpolicy.policy import load_policy
from genpolicy.train import load_checkpoint

from .test_iql_gmpo import _bandit, save_npz

TINY = ["--set", "net=mlp", "--set", "net_hidden=[32,32]", "--set", "critic_hidden=[32,32]", "--set", "batch_size=64",
        "--set", "log_every=10"]


@pytest.fixture
def bandit_file(tmp_path):
    return save_npz(_bandit(n=2000), tmp_path / "bandit.npz")


def _cmd(dataset, run_dir, *extra):
    return [sys.executable, "-m", "genpolicy.cli", "train", "gmpo", "--dataset", str(dataset), "--run-dir", str(run_dir),
            "--no-progress", *TINY, "--set", "critic_steps=400", "--set", "policy_steps=800", "--set", "ckpt_every=20",
            *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _kill_when(dataset, run_dir, when) -> dict:
    """Start a training run, SIGKILL it once its checkpoint satisfies ``when(ck)``; returns that checkpoint."""
    proc = subprocess.Popen(_cmd(dataset, run_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck, deadline = run_dir / "checkpoint.pt", time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ck.exists():
            try:
                c = load_checkpoint(ck)
            except Exception:  # noqa: BLE001 - never expected (atomic writes), but retry rather than flake
                continue
            if when(c):
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    return load_checkpoint(ck)


def test_sigkill_and_resume_gives_identical_weights(bandit_file, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(bandit_file, full), check=True, env=_env(), capture_output=True)
    stopped = _kill_when(bandit_file, killed, lambda c: c["stage"] == 1 and c["step"] >= 60)  # inside the policy stage
    assert (stopped["stage"], stopped["step"]) < (2, 0)
    subprocess.run(_cmd(bandit_file, killed, "--resume"), check=True, env=_env(), capture_output=True)
    a = load_checkpoint(full / "checkpoint.pt")["state"]["modules"]
    b = load_checkpoint(killed / "checkpoint.pt")["state"]["modules"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the resumed run's metrics log has no duplicated steps
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["stage"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert keys == [(r["stage"], r["step"]) for r in map(json.loads, (full / "metrics.jsonl").read_text().splitlines())]


def test_resume_from_a_folder_with_the_checkpoint_alone(bandit_file, tmp_path):
    run = tmp_path / "run"
    at = _kill_when(bandit_file, run, lambda c: c["stage"] == 1)["step"]
    (run / "metrics.jsonl").unlink()  # e.g. a folder rebuilt from a checkpoint that came back from another machine
    (run / "evals.csv").unlink()
    done = subprocess.run(_cmd(bandit_file, run, "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "restarts there" in done.stderr
    steps = [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == [("policy", s) for s in range(at + 10, 801, 10)]  # restarts at the checkpoint, nothing padded
    assert (run / "evals.csv").read_text().startswith("stage,step,score")


def test_resume_grows_the_last_stage_of_a_finished_run_and_refuses_a_finished_earlier_one(bandit_file, tmp_path,
                                                                                           capsys):
    run = tmp_path / "run"
    args = ["train", "gmpo", "--dataset", str(bandit_file), "--run-dir", str(run), "--no-progress", *TINY,
            "--set", "eval_every=0"]
    assert main(args + ["--set", "critic_steps=20", "--set", "policy_steps=20"]) == 0
    assert main(args + ["--set", "critic_steps=20", "--set", "policy_steps=40", "--resume"]) == 0
    steps = [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == [("critic", 10), ("critic", 20)] + [("policy", s) for s in (10, 20, 30, 40)]
    # the grown run is the run that was asked for 40 steps from the start, bit for bit
    fresh = tmp_path / "fresh"
    fresh_args = [a if a != str(run) else str(fresh) for a in args]
    assert main(fresh_args + ["--set", "critic_steps=20", "--set", "policy_steps=40"]) == 0
    a, b = (load_checkpoint(d / "checkpoint.pt")["state"]["modules"] for d in (run, fresh))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the same from a checkpoint written before stage budgets were recorded (its config gives them)
    old = tmp_path / "old"
    old_args = [a if a != str(run) else str(old) for a in args]
    assert main(old_args + ["--set", "critic_steps=20", "--set", "policy_steps=20"]) == 0
    ck = torch.load(old / "checkpoint.pt", weights_only=False)
    del ck["loop"]["stage_steps"]
    torch.save(ck, old / "checkpoint.pt")
    assert main(old_args + ["--set", "critic_steps=20", "--set", "policy_steps=40", "--resume"]) == 0
    c = load_checkpoint(old / "checkpoint.pt")["state"]["modules"]
    assert all(torch.equal(c[k], b[k]) for k in b)
    capsys.readouterr()
    config = (run / "config.yaml").read_text()
    assert main(args + ["--set", "critic_steps=30", "--set", "policy_steps=40", "--resume"]) == 2
    assert "the critic stage finished at 20 steps and the run has moved past it" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == config  # the refused resume recorded nothing


@pytest.mark.parametrize("variant", ["awr", "softmax"])
def test_cli_runs_every_stage_and_deploys(bandit_file, tmp_path, capsys, variant):
    pytest.importorskip("gymnasium")
    run = tmp_path / "run"
    # the bandit has 2-D observations and 1-D actions: evaluate on a matching env is impossible, so no --env here
    rc = main(["train", "gmpo", "--dataset", str(bandit_file), "--run-dir", str(run), "--no-progress", *TINY,
               "--set", "critic_steps=30", "--set", "policy_steps=30", "--set", f"variant={variant}",
               "--set", "behaviour_steps=20", "--set", "num_samples=4"])
    assert rc == 0
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (run / f).exists(), f
    stages = {json.loads(line)["stage"] for line in (run / "metrics.jsonl").read_text().splitlines()}
    assert stages == ({"behaviour", "critic", "policy"} if variant == "softmax" else {"critic", "policy"})
    policy = load_policy(run)
    raw = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    a = policy.act(raw)
    assert a.shape == (5, 1) and np.all(np.abs(a) <= 1)
    assert policy.act(raw[0]).shape == (1,)
    with pytest.raises(ValueError, match="wanted \\(B, 2\\)"):
        policy.act(np.zeros((3, 5), np.float32))


def test_cli_train_and_eval_on_mujoco(tmp_path, capsys):
    pytest.importorskip("gymnasium")
    from genpolicy.datagen import collect, save_d4rl_hdf5

    ds = collect("Hopper-v5", None, 3000, seed=0, num_envs=4)
    save_d4rl_hdf5(ds, tmp_path / "hopper.hdf5")
    run = tmp_path / "run"
    rc = main(["train", "gmpo", "--dataset", str(tmp_path / "hopper.hdf5"), "--env", "Hopper-v5", "--run-dir", str(run),
               "--no-progress", *TINY, "--set", "critic_steps=20", "--set", "policy_steps=20", "--set", "eval_every=10",
               "--set", "eval_episodes=2", "--set", "act_steps=4"])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_score"] is not None and summary["best_score"] >= summary["final_score"]
    assert len((run / "evals.csv").read_text().splitlines()) == 3  # header + 2 evaluations
    assert (run / "best.pt").exists()
    capsys.readouterr()
    assert main(["eval", str(run / "best.pt"), "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env"] == "Hopper-v5" and out["episodes"] == 2 and "score_mean" in out
    assert out["software"]["mujoco"] == summary["software"]["mujoco"] and out["software"]["torch"] == torch.__version__


def test_cli_config_errors(bandit_file, tmp_path, capsys):
    base = ["train", "gmpo", "--dataset", str(bandit_file), "--run-dir", str(tmp_path / "r"), "--no-progress"]
    assert main(base + ["--preset", "nonexistent"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(base + ["--set", "betta=3"]) == 2
    assert "unknown config key 'betta'" in capsys.readouterr().err
    assert main(base + ["--set", "beta"]) == 2
    assert "key=value" in capsys.readouterr().err
    assert main(["train", "gmpo", "--dataset", str(tmp_path / "missing.hdf5"), "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err


def test_presets_resolve_with_precedence():
    from genpolicy.config import load_presets, resolve_config
    from genpolicy.rl.algos import GMPOConfig

    presets = load_presets("gmpo")
    assert presets["hopper-medium"]["beta"] == 16.0
    cfg = resolve_config(GMPOConfig, ["cpu", "hopper-medium-replay"], presets, {"policy_steps": 7}, ["beta=2.5"])
    assert cfg.net == "mlp" and cfg.net_hidden == (256, 256, 256)  # from cpu
    assert cfg.policy_steps == 7 and cfg.beta == 2.5  # flag, then --set, win over presets
