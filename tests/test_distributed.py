"""The suite runner on Ray (a 2-node cluster on loopback), its fsspec run roots and its sweeps: a killed worker's run
is retried and resumes to the uninterrupted run's weights, a restarted runner redoes nothing, the Ray table equals
the local one, and a sweep's variant is chosen on seeds it is not reported on."""

import csv
import json
import os
import signal
import threading
import time

import pytest
import torch

from genpolicy.suite import Task, parse_task, run_suite
from genpolicy.suite.sweep import check_sweep, select, split_values, variants, write_selection
from genpolicy.train import load_checkpoint

from .test_bench import TINY
from .test_trust import hopper_like  # noqa: F401  (fixture)

# read by Ray when it is imported, not when a cluster starts: on loopback only (no interface address), no usage stats
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

LONGER = [*TINY[:-2], "--set", "batch_size=32", "--set", "policy_steps=1500", "--set", "ckpt_every=50"]


def _sets(args):
    return [args[i + 1] for i in range(0, len(args), 2)]


def _weights(root, rel):
    ck = load_checkpoint(root / rel / "checkpoint.pt")
    return ck["state"]["modules"]


def _summaries(root):
    return {str(f.relative_to(root)): f.stat().st_mtime_ns for f in sorted(root.glob("*/*/seed-*/summary.json"))}


@pytest.fixture
def ray_cluster():
    """Two nodes of one CPU each, every address on 127.0.0.1; shut down by the test's end."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _kill_a_worker_mid_run(root, killed: list, stop: threading.Event):
    """SIGKILL the process holding the lock of the first actor run seen with a checkpoint and no summary."""
    while not stop.is_set():
        for lock in root.glob("*/gmpo/seed-*/.lock"):
            d = lock.parent
            try:
                pid = json.loads(lock.read_text() or "{}").get("pid")
            except (OSError, ValueError):
                continue
            if pid and (d / "checkpoint.pt").exists() and not (d / "summary.json").exists():
                os.kill(pid, signal.SIGKILL)
                killed.append((str(d.relative_to(root)), pid))
                return
        time.sleep(0.01)


def test_ray_sweep_survives_a_killed_worker_and_equals_the_local_backend(hopper_like, tmp_path,  # noqa: F811
                                                                         ray_cluster):
    pytest.importorskip("gymnasium")
    task = parse_task(f"{hopper_like}:Hopper-v5")
    sets = _sets(LONGER)
    ray_root, local_root = tmp_path / "ray", tmp_path / "local"
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_a_worker_mid_run, args=(ray_root, killed, stop), daemon=True)
    killer.start()
    try:
        run_suite(["iql", "gmpo"], [task], [0, 1], ["cpu"], ray_root, sets, progress=False, backend="ray")
    finally:
        stop.set()
        killer.join()
    assert killed, "no run was caught between its first checkpoint and its end"
    rel, pid = killed[0]
    s = json.loads((ray_root / rel / "summary.json").read_text())
    assert s["segments"] == 2  # the retried task resumed the killed run from its checkpoint
    assert len(list((ray_root / "hopper_like" / "critic").iterdir())) == 2  # shared: one per seed

    stamps = _summaries(ray_root)
    assert len(stamps) == 6  # 4 runs, 2 shared critics
    run_suite(["iql", "gmpo"], [task], [0, 1], ["cpu"], ray_root, sets, progress=False, backend="ray")
    assert _summaries(ray_root) == stamps  # the restarted runner redid nothing

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task runs (--cpus-per-run 1)
    try:
        run_suite(["iql", "gmpo"], [task], [0, 1], ["cpu"], local_root, sets, progress=False)
    finally:
        torch.set_num_threads(threads)
    for algo in ("iql", "gmpo"):
        for seed in (0, 1):
            a = _weights(ray_root, f"hopper_like/{algo}/seed-{seed}")
            b = _weights(local_root, f"hopper_like/{algo}/seed-{seed}")
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (algo, seed)
    rows = lambda root: [{k: r[k] for k in ("task", "algo", "n", "mean", "se", "scores")}  # noqa: E731
                         for r in csv.DictReader(open(root / "results.csv"))]
    assert rows(ray_root) == rows(local_root) and len(rows(ray_root)) == 2


def test_the_ray_backend_refuses_stacking_and_a_missing_address_before_any_work(hopper_like, tmp_path):  # noqa: F811
    task = parse_task(f"{hopper_like}:Hopper-v5")
    with pytest.raises(ValueError, match="--stack-critics / --stack-seeds .* --backend local"):
        run_suite(["iql"], [task], [0], ["cpu"], tmp_path / "s", backend="ray", stack_seeds=True)
    with pytest.raises(ValueError, match="--backend 'slurm': local or ray"):
        run_suite(["iql"], [task], [0], ["cpu"], tmp_path / "s", backend="slurm")
    assert not (tmp_path / "s").exists()


def test_a_url_run_root_holds_every_run_and_the_table_and_a_rerun_redoes_nothing(hopper_like, tmp_path,  # noqa: F811
                                                                               monkeypatch):
    pytest.importorskip("gymnasium")
    monkeypatch.setenv("GENPOLICY_SCRATCH", str(tmp_path / "scratch"))
    remote = tmp_path / "bucket" / "suite"
    task = parse_task(f"{hopper_like}:Hopper-v5")
    run_suite(["iql", "gmpo"], [task], [0], ["cpu"], f"file://{remote}", _sets(TINY), progress=False)
    for rel in ("hopper_like/iql/seed-0", "hopper_like/gmpo/seed-0"):
        assert json.loads((remote / rel / "summary.json").read_text())["final_score"] is not None
        assert (remote / rel / "checkpoint.pt").exists() and not (remote / rel / ".lock").exists()
    critic = next((remote / "hopper_like" / "critic").iterdir())
    ck = load_checkpoint(remote / "hopper_like" / "iql" / "seed-0" / "checkpoint.pt")
    assert ck["meta"]["critic_from"] == f"file://{remote}/hopper_like/critic/{critic.name}"
    assert [r["algo"] for r in csv.DictReader(open(remote / "results.csv"))] == ["iql", "gmpo"]
    assert not list(remote.rglob("*.tmp"))
    stamps = _summaries(remote)
    for f in (tmp_path / "scratch").rglob("*"):  # a new machine's empty mirror: planned from the remote alone
        if f.is_file():
            f.unlink()
    run_suite(["iql", "gmpo"], [task], [0], ["cpu"], f"file://{remote}", _sets(TINY), progress=False)
    assert _summaries(remote) == stamps


def test_sweep_values_split_outside_brackets_and_bad_sweeps_are_one_line_errors():
    assert split_values("1,4,8") == ["1", "4", "8"]
    assert split_values("[64,64],[256,256]") == ["[64,64]", "[256,256]"]
    axes = check_sweep(["gmpo", "iql"], ["beta=1,4", "policy_lr=1e-4,3e-4"], [], 0)
    assert axes == [("beta", ["1", "4"]), ("policy_lr", ["1e-4", "3e-4"])]
    vs = variants(["gmpo"], None, axes)
    assert [v.column for v in vs] == ["gmpo+beta=1+policy_lr=1e-4", "gmpo+beta=1+policy_lr=3e-4",
                                      "gmpo+beta=4+policy_lr=1e-4", "gmpo+beta=4+policy_lr=3e-4"]
    assert vs[2].sets == ["beta=4", "policy_lr=1e-4"] and {v.base for v in vs} == {"gmpo"}
    drawn = variants(["gmpo"], "g", axes, random_points=3, seed=0)
    assert len(drawn) == 3 and len({v.column for v in drawn}) == 3 and all(v.column.startswith("g+") for v in drawn)
    assert {v.column for v in drawn} <= {"g" + c.column[4:] for c in vs}
    for bad, msg in [(["beta"], "expects KEY=V1,V2"), (["beta=1,1"], "distinct"), (["beta=1", "beta=2"], "twice"),
                     (["policy_lr=1/2"], "without '/'"), (["expectile=0.7,0.9"], r"not a field of \['bc'\]")]:
        with pytest.raises(ValueError, match=msg):
            check_sweep(["bc", "iql"] if "expectile" in bad[0] else ["gmpo"], bad, [], 0)
    with pytest.raises(ValueError, match="twice"):
        check_sweep(["gmpo"], ["beta=1,2"], ["beta=3"], 0)
    with pytest.raises(ValueError, match="--sweep-random"):
        check_sweep(["gmpo"], [], [], 2)


def _summary(root, task, column, seed, score):
    d = root / task / column / f"seed-{seed}"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"algo": "gmpo", "final_score": score}))


def test_the_selected_variant_is_chosen_on_selection_seeds_and_reported_on_the_others(tmp_path):
    vs = variants(["gmpo"], None, [("beta", ["1", "4"])])
    # beta=4 is best on the reported seeds 0-1; beta=1 on the selection seeds 10-11: beta=1 must be chosen
    for seed, s1, s4 in [(10, 60.0, 40.0), (11, 50.0, 45.0), (0, 30.0, 90.0), (1, 34.0, 80.0)]:
        _summary(tmp_path, "t", "gmpo+beta=1", seed, s1)
        _summary(tmp_path, "t", "gmpo+beta=4", seed, s4)
    (row,) = select(tmp_path, [Task("t", None)], vs, [10, 11], [0, 1])
    assert row["variant"] == "gmpo+beta=1" and row["selection"]["mean"] == 55.0
    assert row["scores"] == [30.0, 34.0] and row["report"]["mean"] == 32.0 and row["report"]["se"] == 2.0
    md = write_selection(tmp_path, [Task("t", None)], vs, [10, 11], [0, 1]).read_text()
    assert "| t | gmpo | gmpo+beta=1 (of 2) | 55.0 ± 5.0 (2) | 32.0 ± 2.0 (2) |" in md and "Optimistic" not in md
    assert "Optimistic" in write_selection(tmp_path, [Task("t", None)], vs, [0, 10], [0, 1]).read_text()


def test_a_sweep_through_the_cli_runs_every_variant_on_both_seed_sets_sharing_critics(hopper_like, tmp_path,  # noqa: F811
                                                                                       capsys):
    pytest.importorskip("gymnasium")
    from genpolicy.cli import main

    out = tmp_path / "s"
    assert main(["bench", "--algos", "iql", "gmpo", "--tasks", f"{hopper_like}:Hopper-v5", "--seeds", "0", "--out",
                 str(out), "--no-progress", *TINY, "--sweep", "beta=1,3", "--select-seeds", "5"]) == 0
    assert sorted(p.name for p in (out / "hopper_like").iterdir()) == ["critic", "gmpo+beta=1", "gmpo+beta=3",
                                                                     "iql+beta=1", "iql+beta=3"]
    assert len(list((out / "hopper_like" / "critic").iterdir())) == 2  # seeds 0 and 5, shared by all four variants
    ck = load_checkpoint(out / "hopper_like" / "iql+beta=3" / "seed-5" / "checkpoint.pt")
    assert ck["config"]["beta"] == 3.0 and ck["meta"]["variant"] == ["beta=3"]
    printed = capsys.readouterr().out
    assert "chosen variant" in printed and "| hopper_like | iql | iql+beta=" in printed
    assert "| hopper_like | gmpo | gmpo+beta=" in printed
