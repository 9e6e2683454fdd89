"""Run folders safe for many writers: one writer at a time (a lock held for the run's life, its holder named, gone
with a killed holder), ``--overwrite`` deletes a run's own files only, and a summary is whole or absent."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genpolicy.cli import main
from genpolicy.train.lock import hold_run_folder
from genpolicy.train.rundir import clear_run_folder, read_summary, write_summary

from .test_trust import TINY, bandit  # noqa: F401  (fixture)


def _cmd(data, run, *extra):
    return ["train", "gmpo", "--dataset", str(data), "--run-dir", str(run), *TINY, "--set", "critic_steps=5",
            "--set", "policy_steps=5", *extra]


def test_two_trains_into_one_folder_one_is_refused_naming_the_holder(bandit, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    slow = [sys.executable, "-m", "genpolicy.cli", *_cmd(bandit, run)[:-4], "--set", "critic_steps=100000",
            "--set", "policy_steps=5", "--no-preflight"]
    proc = subprocess.Popen(slow, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ((run / ".lock").exists() and (run / ".lock").read_text()):
            time.sleep(0.1)
        assert json.loads((run / ".lock").read_text())["pid"] == proc.pid
        assert main(_cmd(bandit, run, "--resume")) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"is in use by pid {proc.pid}" in err, err
        assert main(_cmd(bandit, run, "--overwrite")) == 2  # nothing deleted under a live writer
        assert f"pid {proc.pid}" in capsys.readouterr().err and (run / "config.yaml").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with hold_run_folder(run):  # the kernel dropped the dead holder's lock: no stale lock in the way
        pass
    assert main(_cmd(bandit, run, "--overwrite")) == 0


def test_the_lock_is_reentrant_in_a_process_and_exclusive_across_processes(tmp_path):
    d = tmp_path / "r"
    probe = (f"import sys; sys.path.insert(0, {str(tmp_path)!r});"
             f"from genpolicy.train.lock import hold_run_folder, RunFolderLocked\n"
             f"try:\n    with hold_run_folder({str(d)!r}): print('got')\nexcept RunFolderLocked as e: print(e)")
    with hold_run_folder(d):
        with hold_run_folder(d):  # the CLI holds it, train() takes it again
            pass
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
        assert f"{d} is in use by pid {os.getpid()}" in out
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "got"


def test_overwrite_deletes_the_runs_own_files_and_nothing_else(bandit, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert main(_cmd(bandit, run)) == 0
    (run / "notes.txt").write_text("mine")
    (run / "src").mkdir()
    (run / "src" / "x.py").write_text("print(1)")
    assert main(_cmd(bandit, run, "--overwrite")) == 0
    assert (run / "notes.txt").read_text() == "mine" and (run / "src" / "x.py").exists()
    assert read_summary(run) is not None
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.txt").write_text("x")
    with pytest.raises(ValueError, match="not a run folder"):
        clear_run_folder(other)
    assert main(_cmd(bandit, other, "--overwrite")) == 2 and (other / "config.txt").exists()
    assert "not a run folder" in capsys.readouterr().err


def test_a_summary_is_whole_or_not_there_and_an_empty_one_is_no_finished_run(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "summary.json").write_text("")
    assert read_summary(d) is None  # an empty (or torn) file is not a finished run
    (d / "summary.json").write_text('{"algo": "gmpo", "final_sc')
    assert read_summary(d) is None
    (d / "summary.json").write_text("{}")
    assert read_summary(d) is None  # no final score: no run wrote it
    write_summary(d, {"algo": "gmpo", "final_score": 1.5})
    assert read_summary(d) == {"algo": "gmpo", "final_score": 1.5}
    assert not (d / "summary.json.tmp").exists()


def test_the_suite_reruns_a_run_whose_summary_is_empty(tmp_path):
    from genpolicy.suite.plan import finished as _finished

    d = tmp_path / "seed-0"
    d.mkdir()
    (d / "summary.json").write_text("")
    assert not _finished(d)
    write_summary(d, {"algo": "bc", "final_score": None})
    assert _finished(d)


def test_resume_with_another_env_is_refused(bandit, tmp_path, capsys):  # noqa: F811
    """A resumed run keeps the environment its evaluations were made on (evals.csv must not mix two)."""
    run = tmp_path / "run"
    assert main(_cmd(bandit, run, "--no-preflight")) == 0  # trained without --env
    more = ["--set", "policy_steps=8", "--no-preflight"]
    assert main(_cmd(bandit, run, "--resume", "--env", "Pendulum-v1", *more)) == 2
    assert "was trained without an environment; resume it without --env" in capsys.readouterr().err
    assert main(_cmd(bandit, run, "--resume", *more)) == 0


def test_a_file_never_chooses_the_code_that_loads_it(bandit, tmp_path):  # noqa: F811
    """A checkpoint whose header names an unregistered algorithm and a module ('this', and a .py placed beside it)
    is refused by name; neither module is imported."""
    import torch

    from genpolicy.checkpoint import load_torch

    run = tmp_path / "run"
    assert main(_cmd(bandit, run, "--no-preflight")) == 0
    ck = load_torch(run / "checkpoint.pt")
    ck["algo"], ck["algo_module"] = "evil", "this"
    torch.save(ck, tmp_path / "evil.pt")
    (tmp_path / "evil.py").write_text("import pathlib\npathlib.Path('PWNED').write_text('x')\n")
    code = ("import sys\nfrom genpolicy import load_policy\ntry:\n    load_policy('evil.pt')\nexcept ValueError as e:\n"
            "    print(e)\nprint('this' in sys.modules, 'evil' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "GENPOLICY_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env).stdout
    assert "unknown algorithm 'evil'" in out and "genpolicy imports no module a file names" in out
    assert out.strip().splitlines()[-1] == "False False" and not (tmp_path / "PWNED").exists()


def test_after_a_resume_the_first_metrics_row_averages_its_whole_interval(tmp_path):
    """Killed after a checkpoint that falls inside a logging interval (checkpoint at 15, rows every 10), the resumed
    run writes the same metrics.jsonl as the uninterrupted one: its row at 20 averages steps 11-20, not 16-20."""
    import numpy as np

    from genpolicy.rl.datasets import TransitionDataset
    from genpolicy.train import prepare_run, train

    from .tiny import tiny_config

    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(200, 3)).astype(np.float32), rng.uniform(-1, 1, (200, 2)).astype(np.float32)
    nxt = rng.normal(size=(200, 3)).astype(np.float32)
    ds = TransitionDataset(obs, act, rng.normal(size=200).astype(np.float32), nxt, np.zeros(200, bool),
                           np.arange(200) % 50 == 49)
    cfg = tiny_config("bc", policy_steps=30, log_every=10, ckpt_every=15, reward_scale="none")

    def run(d, stop_after=None):
        algo, data = prepare_run("bc", cfg, ds)
        if stop_after is not None:
            update, calls = algo.update, []

            def dies(batch, **kw):
                calls.append(1)
                if len(calls) > stop_after:
                    raise SystemExit("killed")
                return update(batch, **kw)

            algo.update = dies
            with pytest.raises(SystemExit):
                train(algo, data, d, progress=False)
            algo, data = prepare_run("bc", cfg, ds)
            train(algo, data, d, resume=True, progress=False)
        else:
            train(algo, data, d, progress=False)
        return [json.loads(x) for x in open(d / "metrics.jsonl")]

    whole, resumed = run(tmp_path / "whole"), run(tmp_path / "resumed", stop_after=17)
    assert [r["step"] for r in resumed] == [10, 20, 30]
    assert resumed == whole


def _policy_file(bandit, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    assert main(_cmd(bandit, run, "--no-preflight")) == 0
    return run / "checkpoint.pt"


@pytest.mark.parametrize("damage, needle", [
    (lambda ck: ck.__setitem__("dims", (10_000_000, 3)), "obs_dim=10000000 in its header"),
    (lambda ck: ck["config"].__setitem__("net_hidden", [20000, 20000]), r"needs \(\(20000,"),
    (lambda ck: ck["config"].__setitem__("act_steps", 10**9), "act_steps=1000000000: must be 1<=act_steps<=100000"),
    (lambda ck: ck["state"]["modules"].__setitem__("critic.vf.0.bias",
                                                   ck["state"]["modules"]["critic.vf.0.bias"] * float("nan")),
     "critic.vf.0.bias holds"),
    (lambda ck: ck["state"]["normalizer"].__setitem__("std", ck["state"]["normalizer"]["std"] * 0),
     "normalizer std has"),
    (lambda ck: ck["state"]["normalizer"].__setitem__("mean", ck["state"]["normalizer"]["mean"].int()),
     "normalizer mean is"),
])
def test_a_file_that_misdescribes_itself_is_refused_before_anything_is_built(bandit, tmp_path,  # noqa: F811
                                                                            damage, needle):
    """Sizes, step counts, weights and normalizer read from a checkpoint are checked against the tensors it holds
    (built on the meta device: nothing of the header's size is allocated) before the policy is built."""
    import torch

    from genpolicy import load_policy
    from genpolicy.checkpoint import load_torch

    ck = load_torch(_policy_file(bandit, tmp_path))
    damage(ck)
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    with pytest.raises(ValueError, match=needle) as e:
        load_policy(bad)
    assert str(bad) in str(e.value) or "GMPOConfig" in str(e.value)


def test_a_compressed_archive_entry_is_refused_before_it_expands(bandit, tmp_path):  # noqa: F811
    import zipfile

    from genpolicy.checkpoint import load_torch

    good = _policy_file(bandit, tmp_path)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(ValueError, match=f"{bomb}: entry .* is compressed"):
        load_torch(bomb)


def _layout_from(other: str):
    import h5py

    layout = h5py.VirtualLayout(shape=(20, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(other, "x", shape=(20, 3))
    return layout


def _h5(path, **extra):
    import h5py
    import numpy as np

    n = 20
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((n, 3), np.float32)
        f["actions"] = np.zeros((n, 2), np.float32)
        f["rewards"] = np.zeros(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        for k, make in extra.items():
            del f[k]
            make(f, k)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda f, k: f.create_dataset(k, shape=(10**8, 3), dtype="f4", chunks=(1024, 3)),
     r"declares \(100000000, 3\) \(1200000000 bytes\) but the file stores 0 bytes"),
    (lambda f, k: f.__setitem__(k, __import__("h5py").ExternalLink("other.h5", "/x")), "is an external link"),
    (lambda f, k: f.create_dataset(k, shape=(20, 3), dtype="f4", external=[("/dev/zero", 0, 20 * 3 * 4)]),
     "keeps its data outside the file"),
    (lambda f, k: f.create_virtual_dataset(k, _layout_from("other.h5")), "is a virtual dataset mapping data of other"),
])
def test_an_hdf5_file_pointing_elsewhere_or_declaring_what_it_does_not_store_is_refused(tmp_path, make, needle):
    import resource

    from genpolicy.rl.datasets import DatasetError, load_dataset

    path = _h5(tmp_path / "bad.hdf5", observations=make)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DatasetError, match=f"{path} \\[observations\\]: .*{needle}"):
        load_dataset(str(path))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing of its size read
    load_dataset(str(_h5(tmp_path / "good.hdf5")))  # the same file without the trick loads


def test_damaged_files_are_named_in_one_line(bandit, tmp_path, capsys):  # noqa: F811
    """A truncated checkpoint, a NUL-damaged metrics.jsonl, a dataset column of strings and a failed checkpoint
    write each give a message that names the file (and the line, the key), not the library's internals."""
    import numpy as np
    import torch

    from genpolicy.checkpoint import atomic_torch_save, load_torch
    from genpolicy.plotting import read_run
    from genpolicy.rl.datasets import DatasetError, load_npz

    ck = _policy_file(bandit, tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{cut}: not a readable checkpoint"):
        load_torch(cut)
    assert main(["eval", str(cut), "--episodes", "1"]) == 2
    assert f"{cut}: not a readable checkpoint" in capsys.readouterr().err

    m = ck.parent / "metrics.jsonl"
    lines = m.read_text().splitlines(keepends=True)
    m.write_text(lines[0] + lines[1][:20] + "\0\0\0" + lines[1][20:] + "".join(lines[2:]))
    with pytest.raises(ValueError, match=f"{m}, line 2: not a metrics row"):
        read_run(ck.parent)

    bad = tmp_path / "strings.npz"
    n = 10
    np.savez(bad, observations=np.array([["a", "b"]] * n), actions=np.zeros((n, 1), np.float32),
             rewards=np.zeros(n, np.float32), terminals=np.zeros(n, bool))
    with pytest.raises(DatasetError, match=rf"{bad} \[observations\]: is not numeric"):
        load_npz(bad)

    full = tmp_path / "full" / "x.pt"
    full.parent.mkdir()
    real = torch.save

    def no_space(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")

    torch.save = no_space
    try:
        with pytest.raises(OSError, match=f"writing {full} failed .* is the disk full"):
            atomic_torch_save({"a": 1}, full)
    finally:
        torch.save = real
    assert not full.exists() and not list(full.parent.iterdir())  # no half-written file left


def test_a_run_stopped_before_its_first_checkpoint_gets_one_consistent_answer(bandit, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("algo: gmpo\n")  # what a run killed before its first checkpoint leaves
    assert main(_cmd(bandit, run, "--resume", "--no-preflight")) == 2
    first = capsys.readouterr().err
    assert main(_cmd(bandit, run, "--no-preflight")) == 2
    second = capsys.readouterr().err
    for err in (first, second):
        assert "stopped before its first checkpoint" in err and "--overwrite" in err, err
    assert main(_cmd(bandit, run, "--overwrite", "--no-preflight")) == 0
