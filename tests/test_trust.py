"""What a user must be able to trust: preflight errors before training, protected run folders, clean interrupts
with exact resume, seeded evaluation, pickle-free loading, export, --print-config and plots."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from genpolicy import load_policy
from genpolicy.checkpoint import UnsafeCheckpointError, load_torch
from genpolicy.cli import main
from genpolicy.config import load_presets, resolve_config
from genpolicy.plotting import read_run
from genpolicy.rl.algos import GMPOConfig
from genpolicy.rl.datasets import TransitionDataset

from .test_iql_gmpo import _bandit, save_npz

TINY = ["--no-progress", "--set", "net=mlp", "--set", "net_hidden=[32,32]", "--set", "critic_hidden=[32,32]",
        "--set", "batch_size=32", "--set", "log_every=5", "--set", "act_steps=2"]
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def bandit(tmp_path):
    return save_npz(_bandit(n=600), tmp_path / "bandit.npz")


@pytest.fixture
def hopper_like(tmp_path):
    """Random transitions with Hopper-v5's sizes (11-D observations, 3-D actions)."""
    rng = np.random.default_rng(0)
    n = 400
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    ds = TransitionDataset(obs, rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                           rng.normal(size=(n, 11)).astype(np.float32), np.zeros(n, bool),
                           (np.arange(n) % 100 == 99))
    return save_npz(ds, tmp_path / "hopper_like.npz")


def _train(data, run, *extra):
    return ["train", "gmpo", "--dataset", str(data), "--run-dir", str(run), *TINY, "--set", "critic_steps=10",
            "--set", "policy_steps=10", *extra]


@pytest.mark.parametrize("bad, needle", [
    (["--env", "Hoper-v5"], "unknown environment 'Hoper-v5'"),
    (["--env", "Hopper-v5"], "Hopper-v5 has observations of size 11 and actions of size 3; the data"),
    (["--set", "act_solver=rk5"], "act_solver='rk5': expected one of"),
    (["--set", "path=gvpp"], "path='gvpp': expected one of ['vpsde', 'gvp'"),
    (["--set", "net=transformer"], "net='transformer': expected one of"),
    (["--set", "batch_size=0"], "batch_size=0: must be >=1"),
    (["--dataset", "hopper-medum-v5"], "no dataset 'hopper-medum-v5'"),
])
def test_preflight_errors_are_one_line_and_come_before_training(bandit, tmp_path, capsys, bad, needle):
    pytest.importorskip("gymnasium")
    run = tmp_path / "run"
    argv = _train(bad[1], run) if bad[0] == "--dataset" else _train(bandit, run, *bad)
    t = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t < 10
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (run / "metrics.jsonl").exists()  # no training step ran
    if bad[0] == "--dataset":
        assert "hopper-medium-v5" in err  # the error lists the names it knows


def test_a_second_run_into_a_folder_is_refused_and_changes_nothing(bandit, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(_train(bandit, run)) == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    assert main(_train(bandit, run)) == 2
    assert "already holds a run; pass --resume to continue it, --overwrite" in capsys.readouterr().err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()} == before
    assert main(_train(bandit, run, "--overwrite")) == 0
    assert "--overwrite: the run in" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # default folder names get a fresh suffix instead
    argv = [a for a in _train(bandit, run) if a not in ("--run-dir", str(run))]
    assert main(argv) == 0 and main(argv) == 0
    assert "this one goes to runs/gmpo-bandit-0-2" in capsys.readouterr().err
    assert (tmp_path / "runs/gmpo-bandit-0-2/checkpoint.pt").exists()


def _cli(*args):
    return [sys.executable, "-m", "genpolicy.cli", *args]


@pytest.mark.parametrize("algo", ["gmpo", "gmpg"])
def test_sigint_checkpoints_and_the_resumed_run_is_exact(bandit, tmp_path, algo):
    steps = ["--set", "critic_steps=150", "--set", "policy_steps=150", "--set", "ckpt_every=1000"]
    if algo == "gmpg":
        steps += ["--set", "behaviour_steps=50", "--set", "train_steps=2", "--set", "policy_batch_size=16"]
    args = ["train", algo, "--dataset", str(bandit), *TINY, *steps]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    subprocess.run(_cli(*args, "--run-dir", str(tmp_path / "full")), check=True, env=env, capture_output=True)
    run = tmp_path / "cut"
    proc = subprocess.Popen(_cli(*args, "--run-dir", str(run)), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # interrupt inside the policy stage
        # read_run parses complete lines only: the run may be writing the last one as this reads
        if (run / "metrics.jsonl").exists() and "policy" in read_run(run)["metrics"]:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGINT at policy step" in err and f"resume with: genpolicy train {algo}" in err
    ck = load_torch(run / "checkpoint.pt")
    assert ck["step"] > 0  # written at the interrupted step, inside the stage
    subprocess.run(_cli(*args, "--run-dir", str(run), "--resume"), check=True, env=env, capture_output=True)
    a = load_torch(tmp_path / "full" / "checkpoint.pt")["state"]["modules"]
    b = load_torch(run / "checkpoint.pt")["state"]["modules"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["segments"] == 2 and summary["wall_seconds"] > 0


def test_resume_applies_safe_changes_records_them_and_refuses_the_rest(bandit, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train(bandit, run)) == 0
    assert main(_train(bandit, run, "--resume", "--set", "beta=3", "--set", "expectile=0.8")) == 2
    assert "beta, expectile cannot change in a resumed run" in capsys.readouterr().err
    assert main(_train(bandit, run, "--resume", "--set", "policy_steps=5")) == 2
    assert "policy_steps may only grow" in capsys.readouterr().err
    assert main(_train(bandit, run, "--resume", "--set", "policy_steps=20", "--set", "eval_episodes=3")) == 0
    doc = yaml.safe_load((run / "config.yaml").read_text())
    assert doc["config"]["policy_steps"] == 20
    assert doc["config_history"][-1]["changes"] == {"policy_steps": 20, "eval_episodes": 3}
    other = save_npz(_bandit(n=600, seed=1), tmp_path / "other.npz")
    assert main(_train(other, run, "--resume", "--set", "policy_steps=30")) == 2
    assert "differs in sha256" in capsys.readouterr().err


def test_non_finite_losses_stop_the_run_with_the_stage_named(tmp_path, capsys):
    ds = _bandit(n=600)
    ds.rewards[:] = 3e38  # reward_scale=none keeps them: the TD targets overflow
    data = save_npz(ds, tmp_path / "huge.npz")
    assert main(_train(data, tmp_path / "run", "--set", "reward_scale=none")) == 2
    assert "preflight: one critic step gives non-finite q_loss" in capsys.readouterr().err
    assert main(_train(data, tmp_path / "run2", "--set", "reward_scale=none", "--no-preflight")) == 2
    err = capsys.readouterr().err
    assert "critic stage: " in err and "non-finite in steps 1-5" in err


def test_a_stage_monitor_warns_once_per_run_and_the_summary_keeps_it(tmp_path, capsys):
    """Stage.monitor sees every logged row; its message is printed and recorded once, also across a resume."""
    import dataclasses

    from genpolicy.rl.algos import build_algorithm
    from genpolicy.rl.data import OfflineData
    from genpolicy.train import train

    from .toy_algorithm import ToyBCConfig

    data = OfflineData(_bandit(n=200), reward_scale="none")
    seen = []

    def monitor(vals):
        seen.append(vals["bc_loss"])
        return "bc_loss is positive" if vals["bc_loss"] > 0 else None

    def build(steps):
        algo = build_algorithm("toybc", data.obs_dim, data.act_dim, ToyBCConfig(bc_steps=steps, log_every=5,
                                                                                ckpt_every=5))
        stages = algo.stages
        algo.stages = lambda: [dataclasses.replace(st, monitor=monitor) for st in stages()]
        return algo

    first = train(build(10), data, tmp_path / "run", progress=False)
    assert first["warnings"] == [{"stage": "bc", "step": 5, "message": "bc_loss is positive"}]
    assert len(seen) == 2 and capsys.readouterr().out.count("warning [bc 5]: bc_loss is positive") == 1
    resumed = train(build(20), data, tmp_path / "run", resume=True, progress=False)  # a grown budget
    assert len(seen) == 4 and resumed["warnings"] == first["warnings"]
    assert "warning" not in capsys.readouterr().out


def test_the_datas_notes_are_recorded_once_per_run(tmp_path):
    """OfflineData.notes (a narrow return span's reward scale) go into the run's summary warnings as stage 'data',
    once, also across a resume."""
    from genpolicy.rl.algos import build_algorithm
    from genpolicy.rl.data import OfflineData
    from genpolicy.train import train

    from .toy_algorithm import ToyBCConfig

    data = OfflineData(_bandit(n=200), reward_scale="none")
    data.notes.append("the returns span only 95..105")
    build = lambda steps: build_algorithm("toybc", data.obs_dim, data.act_dim,  # noqa: E731
                                          ToyBCConfig(bc_steps=steps, log_every=5, ckpt_every=5))
    note = {"stage": "data", "step": 0, "message": "the returns span only 95..105"}
    assert train(build(5), data, tmp_path / "run", progress=False)["warnings"] == [note]
    assert train(build(10), data, tmp_path / "run", resume=True, progress=False)["warnings"] == [note]


def test_gmpg_warns_when_its_kl_estimate_goes_negative():
    from genpolicy.rl.algos import GMPGConfig, build_algorithm
    from genpolicy.rl.algos.gmpg import KL_WARN_PER_DIM

    algo = build_algorithm("gmpg", 3, 2, GMPGConfig(net="mlp", net_hidden=(8,), critic_hidden=(8,), train_steps=8))
    monitor = algo.stages()[-1].monitor
    assert monitor({"kl_per_dim": KL_WARN_PER_DIM + 0.1}) is None and monitor({"q_loss": 1.0}) is None
    msg = monitor({"kl_per_dim": -0.9})
    assert "cannot be negative" in msg and "train_steps=8 midpoint" in msg and "log_pi" not in msg
    # the paper code's reverse estimator is the more exploitable one at small T (docs/results.md): say so
    algo = build_algorithm("gmpg", 3, 2, GMPGConfig(net="mlp", net_hidden=(8,), critic_hidden=(8,), train_steps=8,
                                                    log_pi="reverse"))
    assert algo.stages()[-1].monitor({"kl_per_dim": -0.9}).endswith("raise train_steps or use log_pi=forward")


def test_gmpg_records_where_its_kl_stop_was_reached(tmp_path, capsys):
    from genpolicy.rl.algos import GMPGConfig, build_algorithm
    from genpolicy.rl.data import OfflineData
    from genpolicy.train import train

    monitor = build_algorithm("gmpg", 3, 2, GMPGConfig(net="mlp", net_hidden=(8,), critic_hidden=(8,),
                                                       kl_stop=0.5)).stages()[-1].monitor
    assert monitor({"kl_per_dim": 0.3, "kl_stopped": 0.0}) is None
    assert monitor({"kl_per_dim": 0.3, "kl_stopped": 0.2}).startswith("kl_stop reached: the KL estimate passed 0.5")
    # end to end (seeded): a stop of 1e-9 nats, reached within the first logging window, is in summary.json's
    # warnings once, at that window's last step; a run without kl_stop has no such entry
    data = OfflineData(_bandit(n=200), reward_scale="none")
    cfg = dict(net="mlp", net_hidden=(8,), critic_hidden=(8,), behaviour_steps=20, critic_steps=5, policy_steps=12,
               train_steps=2, batch_size=16, log_every=4, ckpt_every=100, compile="off")
    got = train(build_algorithm("gmpg", data.obs_dim, data.act_dim, GMPGConfig(**cfg, kl_stop=1e-9)), data,
                tmp_path / "stop", progress=False)["warnings"]
    assert [(w["stage"], w["step"]) for w in got if w["message"].startswith("kl_stop reached")] == [("policy", 4)]
    printed = capsys.readouterr().out  # printed as a note, not a warning
    assert "note [policy 4]: kl_stop reached" in printed and "warning [policy 4]: kl_stop" not in printed
    got = train(build_algorithm("gmpg", data.obs_dim, data.act_dim, GMPGConfig(**cfg)), data, tmp_path / "free",
                progress=False)["warnings"]
    assert not any("kl_stop" in w["message"] for w in got)


def _evil_file(path, marker):
    class Evil:
        def __reduce__(self):
            return (pathlib.Path.touch, (pathlib.Path(marker),))

    torch.save({"algo": "gmpo", "config": Evil(), "meta": {}, "state": {}}, path)
    return path


def test_a_pickle_payload_is_refused_by_every_loader_and_never_runs(bandit, tmp_path, capsys):
    from genpolicy.datagen.sac import SACConfig, _start, load_actor

    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    evil = _evil_file(run / "checkpoint.pt", marker)
    for load in (load_torch, load_policy, load_actor):
        with pytest.raises(UnsafeCheckpointError):
            load(evil)
    with pytest.raises(UnsafeCheckpointError):
        load_policy(run)
    assert main(["eval", str(run), "--env", "Hopper-v5"]) == 2
    assert main(["export", str(run), "-o", str(tmp_path / "p.safetensors")]) == 2
    assert main(_train(bandit, run, "--resume")) == 2
    assert capsys.readouterr().err.count("refusing to load") == 3
    _evil_file(tmp_path / "state.pt", marker)
    with pytest.raises(UnsafeCheckpointError):
        _start(tmp_path, SACConfig(), 3, 1, resume=True)
    assert not marker.exists()


def test_export_loads_without_pickle_and_acts_like_the_run(bandit, tmp_path):
    run = tmp_path / "run"
    assert main(_train(bandit, run)) == 0
    out = tmp_path / "policy.safetensors"
    assert main(["export", str(run), "-o", str(out)]) == 0
    assert main(["export", str(run), "-o", str(out)]) == 2  # no silent overwrite
    exported, original = load_policy(out), load_policy(run / "checkpoint.pt")
    obs = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    torch.manual_seed(3)
    a = original.act(obs)
    torch.manual_seed(3)
    np.testing.assert_array_equal(exported.act(obs), a)


def test_seeded_evaluations_repeat_and_say_what_they_scored(hopper_like, tmp_path, capsys):
    pytest.importorskip("gymnasium")
    run = tmp_path / "run"
    assert main(["train", "gmpo", "--dataset", str(hopper_like), "--env", "Hopper-v5", "--run-dir", str(run), *TINY,
                 "--set", "critic_steps=5", "--set", "policy_steps=5", "--set", "eval_episodes=1"]) == 0
    capsys.readouterr()
    outs = []
    for _ in range(2):
        assert main(["eval", str(run), "--episodes", "2", "--seed", "7", "--checkpoint", "final"]) == 0
        cap = capsys.readouterr()
        outs.append(json.loads(cap.out))
    assert outs[0]["returns"] == outs[1]["returns"]
    assert outs[0]["checkpoint"].endswith("checkpoint.pt") and "final state" in outs[0]["selected"]
    assert "D4RL-normalized" in outs[0]["score_definition"] and "3234.3" in outs[0]["score_definition"]
    assert "unfinished" not in cap.err
    assert main(["eval", str(run), "--episodes", "1", "--env", "Walker2d-v5"]) == 2  # sizes checked first
    # act-time fields can change at evaluation (recorded); others cannot (they would not fit the weights)
    assert main(["eval", str(run), "--episodes", "2", "--seed", "7", "--checkpoint", "final",
                 "--set", "act_temperature=0", "--set", "act_steps=3"]) == 0
    changed = json.loads(capsys.readouterr().out)
    assert changed["act_overrides"] == {"act_temperature": 0.0, "act_steps": 3}
    assert changed["returns"] != outs[0]["returns"] and outs[0]["act_overrides"] == {}
    assert main(["eval", str(run), "--episodes", "1", "--set", "net_hidden=[8]"]) == 2
    assert "only act-time fields" in capsys.readouterr().err
    ck = load_torch(run / "checkpoint.pt")
    ck["stage"], ck["step"] = 1, 2  # as if the run had stopped inside its policy stage
    torch.save(ck, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "warning: the run is unfinished (7 of 10 steps)" in capsys.readouterr().err


def test_print_config_round_trips(capsys):
    argv = ["train", "gmpo", "--preset", "cpu", "--preset", "hopper-medium", "--set", "beta=2.5",
            "--policy-steps", "77", "--print-config"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    want = resolve_config(GMPOConfig, ["cpu", "hopper-medium"], load_presets("gmpo"), {"policy_steps": 77},
                          ["beta=2.5"])
    assert resolve_config(GMPOConfig, ["printed"], {"printed": printed}, {}, []) == want


def test_help_shows_the_choices_and_the_preset_resolved_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "gmpo", "--preset", "cpu", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Defaults shown include the presets cpu" in out
    assert "--net NET policy network: unet (the paper's 512-256-128 MLP U-Net), mlp, resnet or dit (default: mlp;" in out
    assert "``" not in out


def test_plot_writes_a_png(bandit, tmp_path):
    run = tmp_path / "run"
    assert main(_train(bandit, run)) == 0
    assert main(["plot", str(run)]) == 0
    png = (run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # a run still writing (or killed while writing) its last metrics line: the half line is left out, not an error
    before = read_run(run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"stage": "policy", "step": 99999, "policy_lo')
    with open(run / "evals.csv", "a") as f:
        f.write("policy,9")
    assert read_run(run)["metrics"] == before["metrics"] and read_run(run)["evals"] == before["evals"]
    assert main(["plot", str(run)]) == 0


def test_help_is_fast_because_it_does_not_import_torch():
    code = ("import sys, contextlib, io\nfrom genpolicy.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "False"


def test_a_run_records_its_software_and_a_resume_under_other_versions_is_recorded_and_warned(bandit, tmp_path,
                                                                                           monkeypatch, capsys):
    """config.yaml and summary.json name the software a run was trained with; resumed under another mujoco (or
    torch, CPU, ...) the run keeps its first record, adds the new one to its history and warns in its summary (the
    tables list it); a new commit alone is recorded without a warning."""
    import platform

    import genpolicy.train.rundir as train_mod

    run = tmp_path / "run"
    assert main(_train(bandit, run)) == 0
    first = yaml.safe_load((run / "config.yaml").read_text())["software"]
    assert first["torch"] == torch.__version__ and first["python"] == platform.python_version()
    assert first["numpy"] == np.__version__ and first["threads"] == torch.get_num_threads() and first["cpu"]
    assert first["git"] is None or first["git"].split("+")[0].isalnum()
    assert json.loads((run / "summary.json").read_text())["software"] == first

    real = train_mod.software
    monkeypatch.setattr(train_mod, "software", lambda: {**real(), "git": "0123456789ab"})
    assert main(_train(bandit, run, "--resume", "--set", "policy_steps=15")) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["software"] == first and summary["software_history"][0]["software"]["git"] == "0123456789ab"
    assert not any(w["stage"] == "resume" for w in summary["warnings"])

    monkeypatch.setattr(train_mod, "software", lambda: {**real(), "git": "0123456789ab", "mujoco": "9.9.9"})
    assert main(_train(bandit, run, "--resume", "--set", "policy_steps=20")) == 0
    summary = json.loads((run / "summary.json").read_text())
    doc = yaml.safe_load((run / "config.yaml").read_text())
    assert doc["software"] == first and len(doc["software_history"]) == 2
    assert doc["software_history"][1]["software"]["mujoco"] == "9.9.9"
    warned = [w["message"] for w in summary["warnings"] if w["stage"] == "resume"]
    assert warned == [f"resumed under other software (mujoco {first['mujoco']} -> 9.9.9): results may differ from "
                      f"an uninterrupted run's"]
