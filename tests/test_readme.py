"""README.md and the user guide cannot drift from the code: every Python block runs, and every shell command runs in
order (README's, then the guide's, in one scratch folder) with tiny budgets appended as flags, so a renamed flag or
command fails here."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text() + "\n" + (REPO / "docs" / "guide.md").read_text()
#: what users would run at full size; the test appends flags that shrink budgets (later flags win)
TINY_TRAIN = ["--set", "critic_steps=3", "--set", "policy_steps=3", "--set", "behaviour_steps=3", "--set",
              "eval_episodes=1", "--set", "act_steps=2", "--no-progress"]
SHRINK = [
    ("genpolicy toy", ["--models", "GVP", "--train-steps", "20", "--gmpg-steps", "2", "--n-train", "1000",
                       "--n-test", "100", "--no-progress"]),
    ("genpolicy train", TINY_TRAIN),
    ("genpolicy eval", ["--episodes", "1"]),
    ("genpolicy export", []),
    ("genpolicy plot", []),
    ("genpolicy datasets", []),
    ("genpolicy bench", ["--seeds", "0", "--set", "critic_steps=3", "--set", "policy_steps=3", "--set", "steps=3",
                         "--set", "eval_episodes=1", "--set", "final_eval_episodes=1", "--set", "act_steps=2",
                         "--no-progress"]),
    ("genpolicy data behaviour", ["--total-steps", "400", "--start-steps", "100", "--save-every", "200",
                                  "--state-every", "200", "--eval-episodes", "1", "--no-progress"]),
    ("genpolicy data make", ["--transitions", "300", "--num-envs", "2", "--no-progress"]),
    ("genpolicy data maze", ["--transitions", "300", "--no-progress"]),
    ("genpolicy data curves", []),
    ("genpolicy data export", []),
    ("python benchmarks/research/gmpg_bench.py step", ["--T", "2", "--batch", "8", "--repeats", "1"]),
    ("python benchmarks/research/gmpg_bench.py scores", TINY_TRAIN),
    ("python benchmarks/research/gmpg_bench.py kl", ["--states", "4", "--grids", "midpoint:2"]),
    ("python benchmarks/research/gmpg_bench.py qgap", ["--states", "8"]),
    # (curves before curve: the first entry whose text starts the command applies)
    ("python benchmarks/research/gmpg_bench.py curves", []),
    ("python benchmarks/research/gmpg_bench.py curve", ["--steps", "1", "2", "--episodes", "1", "--set", "act_steps=2",
                                               "--no-progress"]),
]
#: commands the test does not run, and why
SKIP = {"pip install": "installs packages", "python -m pytest": "this is the test run",
        "ray start": "starts a Ray cluster node (tests/test_distributed.py runs the backend on a local 2-node one)"}
#: commands containing these are not run either, and why
SKIP_CONTAINING = {"--backend ray": "needs the cluster `ray start` makes (tests/test_distributed.py covers it)"}
PLACEHOLDERS = {"runs/bench/RUN": "runs/bench/hopper-medium-gmpg",
                # the ant controller the docs train for 1M steps is trained for 400 here (its last snapshot)
                "ant-goal/policies/step_1000000.pt": "ant-goal/policies/step_0000400.pt",
                # the committed controller, from the scratch folder the commands run in
                "datasets/controllers/ant-goal.safetensors": str(REPO / "datasets" / "controllers" /
                                                                 "ant-goal.safetensors")}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    cmds = []
    for block in _blocks("bash"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def test_python_blocks_run(tmp_path):
    blocks = _blocks("python")
    assert blocks
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # (spinning torch threads on a loaded machine: 100x slower)
    for code in blocks:
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True,
                       timeout=300)


def test_shell_commands_run_in_order_with_tiny_budgets(tmp_path):
    pytest.importorskip("gymnasium")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    ran = []
    for cmd in _commands():
        if any(cmd.startswith(s) for s in SKIP) or any(s in cmd for s in SKIP_CONTAINING):
            continue
        extra = next((flags for prefix, flags in SHRINK if cmd.startswith(prefix)), None)
        assert extra is not None, f"README command not covered by this test (add it to SHRINK or SKIP): {cmd}"
        for a, b in PLACEHOLDERS.items():
            cmd = cmd.replace(a, b)
        argv = shlex.split(cmd)
        if argv[0] == "genpolicy":
            argv = [sys.executable, "-m", "genpolicy.cli", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, str(REPO / argv[1]), *argv[2:]]
        if "--print-config" in argv:
            extra = []
        p = subprocess.run(argv + extra, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{cmd}\n{p.stderr[-2000:]}"
        ran.append(cmd.split()[0:3])
    assert len(ran) >= 15
