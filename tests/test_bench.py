"""The suite runner: killed and run again, it skips finished runs, resumes the rest, shares one critic per task and
seed, and writes one table row per (task, algorithm)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genpolicy.rl.algos import build_algorithm
from genpolicy.train import load_checkpoint

from .test_trust import hopper_like  # noqa: F401  (fixture)
from .tiny import registered, tiny_config, tiny_sets

TINY = ["--set", "critic_steps=30", "--set", "policy_steps=4", "--set", "eval_every=0", "--set", "eval_episodes=1",
        "--set", "final_eval_episodes=2", "--set", "act_steps=2", "--set", "net=mlp", "--set", "net_hidden=[32,32]",
        "--set", "critic_hidden=[32,32]", "--set", "actor_hidden=[32,32]", "--set", "batch_size=32"]


def test_the_suite_resumes_after_sigkill_without_redoing_or_duplicating(hopper_like, tmp_path):  # noqa: F811
    pytest.importorskip("gymnasium")
    out = tmp_path / "suite"
    cmd = [sys.executable, "-m", "genpolicy.cli", "bench", "--algos", "bc", "iql", "gmpo", "--tasks",
           f"{hopper_like}:Hopper-v5", "--seeds", "0", "1", "--out", str(out), "--no-progress", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    first = None
    while time.time() < deadline and proc.poll() is None:
        done = sorted(out.glob("*/*/seed-*/summary.json"))
        if done:
            first = done[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert first is not None and proc.returncode == -signal.SIGKILL, "the suite finished before it could be killed"
    stamp = first.stat().st_mtime_ns
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    assert first.stat().st_mtime_ns == stamp  # the finished run was not redone
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["task"], r["algo"]) for r in rows] == [("hopper_like", a) for a in ("bc", "iql", "gmpo")]
    assert all(r["n"] == "2" and r["mean"] not in ("", "None") for r in rows)
    md = (out / "results.md").read_text()
    assert md.count("| hopper_like |") == 3 and "± " in md  # one score row, one selected row, one cost row
    assert all(float(r["act_ms"]) > 0 for r in rows)
    assert len(list(out.glob("hopper_like/*/seed-*/act_latency.json"))) == 6
    critics = sorted((out / "hopper_like" / "critic").iterdir())
    assert len(critics) == 2  # one per seed, shared by iql and gmpo
    for algo in ("iql", "gmpo"):
        ck = load_checkpoint(out / "hopper_like" / algo / "seed-1" / "checkpoint.pt")
        assert ck["config"]["critic_steps"] == 0 and "critic" in ck["meta"]["critic_from"]
    assert (out / "curves-hopper_like.png").exists()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)  # all done: nothing to do
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 3


def test_a_set_key_no_algorithm_has_is_an_error(hopper_like, tmp_path):  # noqa: F811
    from genpolicy.suite import parse_task, run_suite

    with pytest.raises(ValueError, match=r"\['polcy_steps'\] are fields of none of \['bc', 'iql'\]"):
        run_suite(["bc", "iql"], [parse_task(f"{hopper_like}:Hopper-v5")], [0], ["cpu"], tmp_path / "s",
                  ["polcy_steps=4"], progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("algo", registered())
def test_every_registered_algorithm_runs_through_the_suite(hopper_like, tmp_path, algo):  # noqa: F811
    """Each algorithm (baselines and plugins included) trains at its own test budget, evaluates and gets a score and
    cost row from the runner; with --stack-seeds both seeds finish, trained as one model where its first stage
    stacks."""
    pytest.importorskip("gymnasium")
    from genpolicy.suite import parse_task, run_suite

    tiny = tiny_sets(algo)
    run_suite([algo], [parse_task(f"{hopper_like}:Hopper-v5")], [0], ["cpu"], tmp_path / "s", tiny, progress=False)
    rows = {r["algo"]: r for r in csv.DictReader(open(tmp_path / "s" / "results.csv"))}
    assert set(rows) == {algo} and rows[algo]["n"] == "1" and float(rows[algo]["act_ms"]) > 0

    run_suite([algo], [parse_task(str(hopper_like))], [0, 1], ["cpu"], tmp_path / "v", tiny, progress=False,
              stack_seeds=True)
    summary = json.loads((tmp_path / "v" / "hopper_like" / algo / "seed-1" / "summary.json").read_text())
    first = next(st for st in build_algorithm(algo, 11, 3, tiny_config(algo)).stages() if st.steps > 0)
    assert (summary.get("stacked_seeds") == [0, 1]) == first.stackable


def test_changed_settings_need_a_label_and_a_label_shares_the_critic(hopper_like, tmp_path):  # noqa: F811
    pytest.importorskip("gymnasium")
    from genpolicy.suite import parse_task, run_suite

    task, out = [parse_task(f"{hopper_like}:Hopper-v5")], tmp_path / "s"
    tiny = ["critic_steps=3", "policy_steps=3", "eval_every=0", "final_eval_episodes=1", "critic_hidden=[8]",
            "actor_hidden=[8]", "batch_size=8"]
    run_suite(["iql"], task, [0], ["cpu"], out, tiny, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(beta=3.0 there, beta=1.0 asked\).*--set beta=3.0 to "
                                         r"continue with its settings"):
        run_suite(["iql"], task, [0], ["cpu"], out, tiny + ["beta=1"], progress=False)
    with pytest.raises(ValueError, match="one algorithm's variant"):
        run_suite(["iql", "bc"], task, [0], ["cpu"], out, tiny, progress=False, label="x")
    run_suite(["iql"], task, [0], ["cpu"], out, tiny + ["beta=1"], progress=False, label="iql-beta1")
    assert (out / "hopper_like" / "iql-beta1" / "seed-0" / "summary.json").exists()
    assert len(list((out / "hopper_like" / "critic").iterdir())) == 1  # the variant reused the critic
    header = (out / "results.md").read_text().splitlines()[0]
    assert header == "| task | data | iql-beta1 | iql |"  # the first run's column stays in the table


def test_the_table_gathers_every_finished_run_in_the_folder(tmp_path):
    from genpolicy.suite import Task, everything_in

    for task, algo, finished in [("t1", "bc", True), ("t1", "gmpo", True), ("t2", "iql", True),
                                 ("t1", "critic", True), ("t2", "td3bc", False)]:
        d = tmp_path / task / algo / "seed-0"
        d.mkdir(parents=True)
        if finished:
            (d / "summary.json").write_text("{}")
    tasks, algos = everything_in(tmp_path, [Task("t1", "Env-v5")], ["gmpo"])
    assert [(t.name, t.env) for t in tasks] == [("t1", "Env-v5"), ("t2", None)]
    assert algos == ["gmpo", "bc", "iql"]  # asked first; no shared critics, no unfinished runs


def test_the_table_lists_the_warnings_the_runs_recorded(tmp_path):
    import json

    from genpolicy.suite import Task, collect, write_table

    for seed, warnings in [(0, [{"stage": "policy", "step": 50, "message": "the KL estimate is negative"}]), (1, [])]:
        d = tmp_path / "t1" / "gmpg" / f"seed-{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"final_score": 10.0 + seed, "warnings": warnings}))
        (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 1.0}))
    md = write_table(collect(tmp_path, [Task("t1", None)], ["gmpg"]), tmp_path).read_text()
    assert "| t1 | - | 10.5 ± 0.5 (2) |" in md
    assert "- t1 gmpg seed 0 (policy step 50): the KL estimate is negative" in md
    assert md.count("seed 1 (") == 0


def test_the_cost_of_seeds_trained_as_one_model_is_shared(tmp_path):
    """Train minutes per seed: a run's own wall time; a stacked run's share (``seed_seconds``); a summary from before
    that was recorded, trained stacked whole, splits its wall time evenly."""
    import json

    from genpolicy.suite import Task, collect

    for algo, summaries in [("a", [{"wall_seconds": 600}, {"wall_seconds": 1200}]),
                            ("b", [{"wall_seconds": 900, "seed_seconds": 300}] * 2),
                            ("c", [{"wall_seconds": 1800, "stacked_seeds": [0, 1, 2]}] * 2)]:
        for seed, summ in enumerate(summaries):
            d = tmp_path / "t1" / algo / f"seed-{seed}"
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps({"final_score": 1.0, **summ}))
            (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 1.0}))
    rows = {r["algo"]: r["train_minutes"] for r in collect(tmp_path, [Task("t1", None)], ["a", "b", "c"])}
    assert rows == {"a": 15.0, "b": 5.0, "c": 10.0}


def test_the_table_lists_a_datas_note_once_per_task(tmp_path):
    import json

    from genpolicy.suite import Task, collect, write_table

    note = {"stage": "data", "step": 0, "message": "the returns span only 95..105"}
    for algo in ("iql", "gmpo"):
        for seed in (0, 1):
            d = tmp_path / "t1" / algo / f"seed-{seed}"
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps({"final_score": 1.0, "warnings": [note]}))
            (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 1.0}))
    md = write_table(collect(tmp_path, [Task("t1", None)], ["iql", "gmpo"]), tmp_path).read_text()
    assert md.count("95..105") == 1 and "- t1 (every run on this data): the returns span only 95..105" in md


def test_stacked_critics_equal_the_suites_single_critics_and_resume_as_single_runs(hopper_like, tmp_path):  # noqa: F811
    """``--stack-critics``: the seeds' shared critics trained as one stacked model are the critics the ordinary suite
    trains (to 1e-5), in the same folders, with their metrics; a stacked pass SIGKILLed after a checkpoint is
    finished by the ordinary single-run resume and ends at the same critics."""
    import torch

    from genpolicy.suite import Task, run_suite

    tiny = ["critic_steps=400", "policy_steps=2", "critic_hidden=[32,32]", "actor_hidden=[8]", "batch_size=32",
            "final_eval_episodes=1", "ckpt_every=20", "log_every=50"]
    task = Task(str(hopper_like), None)

    def critics(out):
        dirs = sorted((out / "hopper_like" / "critic").iterdir())
        return dirs, [{k: v for k, v in load_checkpoint(d / "checkpoint.pt")["state"]["modules"].items()
                       if k.startswith("critic.")} for d in dirs]

    def assert_same(ws, ref):
        assert len(ws) == len(ref)
        for a, b in zip(ref, ws):
            assert a.keys() == b.keys() and len(a) > 10
            for k in a:
                torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-5)

    run_suite(["iql"], [task], [0, 1], ["cpu"], tmp_path / "single", tiny, progress=False)
    run_suite(["iql"], [task], [0, 1], ["cpu"], tmp_path / "stacked", tiny, progress=False, stack_critics=True)
    (d1, w1), (d2, w2) = critics(tmp_path / "single"), critics(tmp_path / "stacked")
    assert [d.name for d in d1] == [d.name for d in d2]
    assert_same(w2, w1)
    assert not torch.equal(w2[0]["critic.vf.0.weight"], w2[1]["critic.vf.0.weight"])  # the seeds differ
    for d in d2:
        assert sum(1 for _ in open(d / "metrics.jsonl")) == 8  # steps 50, 100, ..., 400
        assert (d / "config.yaml").exists()
        assert json.loads((d / "summary.json").read_text())["stacked_seeds"] == [0, 1]  # trained stacked

    part = tmp_path / "part"
    cmd = [sys.executable, "-m", "genpolicy.cli", "bench", "--algos", "iql", "--tasks", str(hopper_like),
           "--seeds", "0", "1", "--out", str(part), "--no-progress", "--stack-critics",
           *[x for t in tiny for x in ("--set", t)]]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        cks = list(part.glob("hopper_like/critic/*/checkpoint.pt"))
        if len(cks) == 2 and not list(part.glob("hopper_like/critic/*/summary.json")):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait()
    assert killed, "the stacked pass finished before it could be killed"
    cks = [load_checkpoint(c) for c in sorted(part.glob("hopper_like/critic/*/checkpoint.pt"))]
    assert all(0 < ck["step"] < 400 and ck["meta"]["stacked_seeds"] == [0, 1] for ck in cks)
    run_suite(["iql"], [task], [0, 1], ["cpu"], part, tiny, progress=False)  # ordinary resume of each seed
    assert_same(critics(part)[1], w1)


def test_stack_seeds_trains_gmpo_seeds_as_one_model_equal_to_the_suites_single_runs(hopper_like, tmp_path,  # noqa: F811
                                                                                  capsys):
    """``--stack-seeds``: the shared critics and GMPO's policy stages of two seeds trained as one model each, in the
    folders the ordinary suite writes, ending at its weights (to 1e-5); an algorithm without a vectorized stage (fql)
    runs each seed alone in the same call, and says so."""
    import torch

    from genpolicy.suite import Task, run_suite

    tiny = ["critic_steps=60", "policy_steps=40", "critic_hidden=[32,32]", "net=mlp", "net_hidden=[32,32]",
            "batch_size=32", "final_eval_episodes=1", "ckpt_every=20", "log_every=20", "act_steps=2"]
    task = Task(str(hopper_like), None)

    def weights(out, algo):
        return [load_checkpoint(d / "checkpoint.pt")["state"]["modules"]
                for d in sorted((out / "hopper_like" / algo).iterdir())]

    run_suite(["gmpo"], [task], [0, 1], ["cpu"], tmp_path / "single", tiny, progress=False)
    from genpolicy.cli import main  # through the command line: the flag's wiring too

    fql = ["steps=20", "flow_steps=2", "actor_hidden=[8]"]  # (net_hidden: the shared name, [32,32] above)
    assert main(["bench", "--algos", "gmpo", "fql", "--tasks", str(hopper_like), "--seeds", "0", "1", "--out",
                 str(tmp_path / "stacked"), "--no-progress", "--stack-seeds",
                 *[x for t in tiny + fql for x in ("--set", t)]]) == 0
    err = capsys.readouterr().err
    assert "fql: its train stage has no vectorized form; the 2 seeds train one after the other" in err
    ref, got = weights(tmp_path / "single", "gmpo"), weights(tmp_path / "stacked", "gmpo")
    assert len(ref) == len(got) == 2
    for a, b in zip(ref, got):
        assert a.keys() == b.keys() and any(k.startswith("policy.") for k in a)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-5, msg=lambda m: f"{k}: {m}")
    for algo, stacked in (("gmpo", [0, 1]), ("critic", [0, 1]), ("fql", None)):
        for d in sorted((tmp_path / "stacked" / "hopper_like" / algo).iterdir()):
            assert json.loads((d / "summary.json").read_text()).get("stacked_seeds") == stacked
    rows = list(csv.DictReader(open(tmp_path / "stacked" / "results.csv")))
    assert {r["algo"] for r in rows} >= {"gmpo", "fql"}


def test_rescore_scores_every_finished_run_once_per_setting_as_genpolicy_eval_does(hopper_like, tmp_path,  # noqa: F811
                                                                                    capsys):
    """benchmarks/rescore.py: each (run, setting) scored by `genpolicy eval --seed S --set SETTING` and kept, so a
    second call evaluates nothing; the table has one cell per algorithm and setting, the CSV one row per seed."""
    pytest.importorskip("gymnasium")
    import importlib.util
    from pathlib import Path

    from genpolicy.cli import main as cli

    out = tmp_path / "suite"
    pairs = zip(TINY[::2], TINY[1::2])
    tiny = [x for flag, kv in pairs if not kv.startswith("actor_hidden") for x in (flag, kv)]  # not a GMPO field
    assert cli(["bench", "--algos", "gmpo", "--tasks", f"{hopper_like}:Hopper-v5", "--seeds", "0", "1", "--out",
                str(out), "--no-progress", *tiny]) == 0
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "rescore.py"
    spec = importlib.util.spec_from_file_location("rescore", path)
    rescore = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rescore)
    args = ["--name", "t", "--algos", "gmpo", "--set", "act_temperature=1", "act_temperature=0", "--tasks",
            f"{hopper_like}:Hopper-v5", "--suite", str(out), "--episodes", "2", "--docs", str(tmp_path / "docs")]
    capsys.readouterr()
    assert rescore.main(args) == 0
    table = capsys.readouterr().out
    kept = sorted(out.glob("hopper_like/gmpo/seed-*/rescore/*.json"))
    assert [f.name for f in kept] == ["act_temperature=0-seed0-ep2.json", "act_temperature=1-seed0-ep2.json"] * 2
    cli(["eval", str(out / "hopper_like/gmpo/seed-1"), "--checkpoint", "final", "--episodes", "2", "--seed", "0",
         "--set", "act_temperature=0", "--out", str(tmp_path / "direct.json")])
    direct = json.loads((tmp_path / "direct.json").read_text())
    assert json.loads(kept[2].read_text())["returns"] == direct["returns"]
    stamps = [f.stat().st_mtime_ns for f in kept]
    capsys.readouterr()
    assert rescore.main(args) == 0
    assert capsys.readouterr().out == table and [f.stat().st_mtime_ns for f in kept] == stamps  # nothing redone
    assert "| hopper_like | - | " in table and table.count("(2)") == 2
    rows = list(csv.DictReader(open(tmp_path / "docs" / "t.csv")))
    assert len(rows) == 4 and {r["setting"] for r in rows} == {"act_temperature=0", "act_temperature=1"}
    # a setting of several keys, joined by commas: each goes to genpolicy eval as its own --set
    both = "act_temperature=0,act_steps=2"
    assert rescore.main([*args[:5], both, *args[7:]]) == 0
    f = out / "hopper_like/gmpo/seed-0/rescore" / f"{both}-seed0-ep2.json"
    assert json.loads(f.read_text())["act_overrides"] == {"act_temperature": 0.0, "act_steps": 2}
    with pytest.raises(SystemExit):
        rescore.main([*args[:5], "act_temperature=0,act_steps", *args[7:]])


def _load_bench_script(name):
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))  # rescore.py imports results_page as a sibling
    spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rebuilding_a_results_table_keeps_the_committed_seeds_whose_run_folders_are_absent(tmp_path, monkeypatch,
                                                                                          capsys):
    """results_page.py on a checkout that holds only some of a table's runs (run folders are not committed): the
    committed CSV's other seeds stay in the table with their scores, a run here wins over its committed row, and a
    one-task table's curves are not redrawn from the partial runs."""
    import csv
    import json

    page = _load_bench_script("results_page")
    suite, docs = tmp_path / "suite", tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setitem(page.TABLES, "t", (str(suite), ["t1:Env-v5"], ["td3bc", "bc"]))

    def run(algo, seed, score, minutes):
        d = suite / "t1" / algo / f"seed-{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"final_score": score, "wall_seconds": 60 * minutes}))
        (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 0.5}))

    run("td3bc", 0, 30.0, 10)
    run("bc", 0, 50.0, 2)
    run("bc", 1, 54.0, 4)
    assert page.build("t", docs).splitlines()[2] == "| t1 | - | 30.0 (1) | 52.0 ± 2.0 (2) |"
    (docs / "t.png").write_bytes(b"committed curves")
    text = (docs / "t.csv").read_text()
    (docs / "t.csv").write_text(text.replace(",bc,2,52.0,", ",bc,2,52.0001234,"))  # as from unrounded scores
    for d in suite.glob("t1/*/seed-*"):  # a fresh checkout: no run folders but td3bc's new seeds
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    run("td3bc", 1, 40.0, 20)
    run("td3bc", 2, 35.0, 30)
    capsys.readouterr()
    md = page.build("t", docs)
    assert md.splitlines()[2] == "| t1 | - | 35.0 ± 2.9 (3) | 52.0 ± 2.0 (2) |"
    assert "| t1 | 20 min / 0.5 ms | 3 min / 0.5 ms |" in md  # carried seeds count their committed minutes
    err = capsys.readouterr().err
    assert "t: t1 td3bc: seeds 0 carried from the committed table" in err and "t1 bc: seeds 0 1 carried" in err
    rows = {r["algo"]: r for r in csv.DictReader(open(docs / "t.csv"))}
    assert rows["td3bc"]["seeds"] == "0 1 2" and rows["td3bc"]["scores"] == "30.000 40.000 35.000"
    assert rows["bc"]["seeds"] == "0 1" and rows["bc"]["scores"] == "50.000 54.000"
    assert rows["bc"]["mean"] == "52.0001234"  # a row carried whole keeps its committed mean, not one from rounding
    assert (docs / "t.png").read_bytes() == b"committed curves"
    assert page.build("t", docs) == md  # rebuilt from its own output: the same table (minutes included)
    run("bc", 1, 55.0, 4)  # a rerun here that scores otherwise replaces its committed row, and says so
    md = page.build("t", docs)
    assert md.splitlines()[2] == "| t1 | - | 35.0 ± 2.9 (3) | 52.5 ± 2.5 (2) |"
    assert "t1 bc seed 1: run here 55.000, committed 54.000" in capsys.readouterr().err


def test_a_results_table_of_several_tasks_plots_every_seed_of_every_cell_carried_ones_included(tmp_path,
                                                                                               monkeypatch):
    """results_page.py on a table of several tasks draws bars with each seed as a dot (a PNG beside the CSV), from
    the rebuilt table: the committed seeds whose run folders are absent are drawn too; the y label says the
    score's unit (raw return where the environment has no D4RL reference returns)."""
    import json

    pytest.importorskip("matplotlib")
    page = _load_bench_script("results_page")
    suite, docs = tmp_path / "suite", tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setitem(page.TABLES, "t", (str(suite), ["t1:dm_control/cheetah-run-v0", "t2:dm_control/cheetah-run-v0"],
                                            ["bc", "iql"]))

    def run(task, algo, seed, score):
        d = suite / task / algo / f"seed-{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"final_score": score, "wall_seconds": 60}))
        (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 0.5}))

    run("t1", "bc", 0, 100.0)
    run("t2", "iql", 0, 300.0)
    page.build("t", docs)
    assert (docs / "t.png").stat().st_size > 0
    for d in list(suite.glob("t*/*/seed-*")):  # a fresh checkout with one new seed
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    run("t1", "bc", 1, 140.0)
    drawn = {}
    monkeypatch.setattr(page, "_headline_plot", lambda *a: drawn.update(zip(
        ("tasks", "cols", "got", "data", "out", "ylabel"), a)))
    page.build("t", docs)
    assert drawn["tasks"] == ["t1", "t2"] and drawn["cols"] == ["bc", "iql"] and drawn["out"] == docs / "t.png"
    assert drawn["got"] == {("t1", "bc"): [100.0, 140.0], ("t1", "iql"): [], ("t2", "bc"): [], ("t2", "iql"): [300.0]}
    assert drawn["data"] == {"t1": None, "t2": None} and drawn["ylabel"] == "episode return"
    assert page.score_label("genpolicy/antmaze-umaze-v0") == "success rate (%)"
    assert page.score_label("Hopper-v5") == "D4RL-normalized score"


def test_rebuilding_a_results_table_carries_the_committed_selected_checkpoints_with_their_seeds(tmp_path,
                                                                                                 monkeypatch):
    """The selected checkpoints' held-out scores of seeds whose run folders are absent stay in the rebuilt table
    beside the runs here, each with its own seed (the CSV lists them in seed order, one per seed)."""
    import csv
    import json

    page = _load_bench_script("results_page")
    suite, docs = tmp_path / "suite", tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setitem(page.TABLES, "t", (str(suite), ["t1:Env-v5"], ["bc"]))

    def run(seed, score, chosen):
        d = suite / "t1" / "bc" / f"seed-{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"final_score": score, "wall_seconds": 60}))
        (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 0.5}))
        (d / "selected.json").write_text(json.dumps({"score": chosen}))

    run(0, 30.0, 31.0)
    run(2, 50.0, 58.0)
    page.build("t", docs)
    for d in list(suite.glob("t1/bc/seed-*")):  # a fresh checkout with one new seed between the committed two
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    run(1, 40.0, 46.0)
    md = page.build("t", docs)
    row = next(csv.DictReader(open(docs / "t.csv")))
    assert row["seeds"] == "0 1 2" and row["scores"] == "30.000 40.000 50.000"
    assert row["selected_scores"] == "31.000 46.000 58.000" and float(row["selected_mean"]) == 45.0
    assert "| t1 | 45.0 ± 7.8 (3) |" in md
    # a committed row whose selected scores cannot be matched to its seeds is left out, and said so
    text = (docs / "t.csv").read_text().replace("31.000 46.000 58.000", "31.000 46.000")
    (docs / "t.csv").write_text(text)
    logged = []
    rows = [{"task": "t1", "algo": "bc", "seeds": [], "scores": [], "seed_minutes": [], "act_ms": None}]
    page.carry_committed(rows, page.committed_rows(docs / "t.csv"), log=logged.append)
    assert "selected" not in rows[0] and any("cannot be matched to seeds" in m for m in logged)


def test_rescoring_keeps_the_committed_rows_it_did_not_score_again(tmp_path, capsys):
    """rescore.py on a checkout without some runs' folders: their committed per-seed rows stay in the CSV (and in
    the table, for this call's tasks and columns), so that re-scoring never drops them."""
    import csv
    import json

    rescore = _load_bench_script("rescore")
    docs = tmp_path / "docs"
    docs.mkdir()
    rows = [["task", "algo", "setting", "seed", "score"], ["t1", "gmpo", "act_temperature=0", "0", "40.000"],
            ["t1", "gmpo", "act_temperature=0", "1", "42.000"], ["t2", "gmpo", "act_temperature=0", "0", "7.000"]]
    with open(docs / "n.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    d = tmp_path / "suite" / "t1" / "gmpo" / "seed-2"  # a new seed, already scored (its rescore file kept)
    (d / "rescore").mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"final_score": 1.0}))
    (d / "rescore" / "act_temperature=0-seed0-ep50.json").write_text(json.dumps({"score_mean": 44.0}))
    assert rescore.main(["--name", "n", "--algos", "gmpo", "--set", "act_temperature=0", "--tasks", "t1:Env-v5",
                         "--suite", str(tmp_path / "suite"), "--docs", str(docs)]) == 0
    out = capsys.readouterr()
    assert "| t1 | - | 42.0 ± 1.2 (3) |" in out.out
    assert "seed-0 act_temperature=0: 40.0 carried" in out.err and "1 committed rows of other tasks" in out.err
    got = list(csv.reader(open(docs / "n.csv")))
    assert got == [*rows[:3], ["t1", "gmpo", "act_temperature=0", "2", "44.000"], rows[3]]
    # the file keeps its committed order of (task, algo, setting) groups: a group of another task first stays first
    with open(docs / "n.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], rows[3], *rows[1:3]])
    assert rescore.main(["--name", "n", "--algos", "gmpo", "--set", "act_temperature=0", "--tasks", "t1:Env-v5",
                         "--suite", str(tmp_path / "suite"), "--docs", str(docs)]) == 0
    assert list(csv.reader(open(docs / "n.csv"))) == [rows[0], rows[3], *rows[1:3],
                                                      ["t1", "gmpo", "act_temperature=0", "2", "44.000"]]


def test_result_bars_draw_no_bar_for_a_cell_without_runs_and_keep_the_legend_off_the_bars(tmp_path, monkeypatch):
    """A missing cell must not read as a score of 0: it has no bar (a real 0 keeps its bar and its seeds' dots)."""
    import math

    pytest.importorskip("matplotlib")
    page = _load_bench_script("results_page")
    import genpolicy.plotting

    figs = []
    monkeypatch.setattr(genpolicy.plotting, "save_figure", lambda fig, out: figs.append(fig))
    page._headline_plot(["a", "b"], ["x", "y"], {("a", "x"): [1.0, 3.0], ("b", "x"): [0.0, 0.0], ("a", "y"): [2.0]},
                        {"a": 1.0, "b": None}, tmp_path / "bars.png")
    ax = figs[0].axes[0]
    heights = {(round(r.get_x() + r.get_width() / 2, 2)): r.get_height() for r in ax.patches}
    assert heights[-0.2] == 2.0 and heights[0.8] == 0.0 and heights[0.2] == 2.0  # x on a, x on b (a real 0), y on a
    assert math.isnan(heights[1.2])  # y on b: no runs, no bar drawn
    assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1  # outside the axes


def test_the_headline_table_composes_the_committed_tables_and_counts_the_wins_from_their_means(tmp_path):
    """results_page.py --headline: each column's seeds from its own committed CSV (a suite table's per-row seed
    list, a rescore table's per-seed rows of one setting), the medium-expert rows likewise (bc and TD3+BC from their
    suite table, IQL's actor, GMPO and GMPG from their rescore table), and the above-IQL / above-data counts from the
    means of cells with 3 seeds or more only (a one-seed cell is shown, not counted)."""
    import csv

    pytest.importorskip("matplotlib")
    page = _load_bench_script("results_page")
    tasks = [page.parse_task(t).name for t in page.SIX]
    head = ["task", "algo", "n", "mean", "se", "data_score", "train_minutes", "act_ms", "seeds", "scores"]
    with open(tmp_path / "six-tasks-cpu.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for t in tasks:
            w.writerow([t, "bc", 3, 2.0, 1.0, 0, 1, 0.1, "0 1 2", "1.000 3.000 2.000"])
            w.writerow([t, "td3bc", 1, 99.0, "", 0, 1, 0.1, "0", "99.000"])
    with open(tmp_path / "six-tasks-c100k-temperature.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "algo", "setting", "seed", "score"])
        for i, t in enumerate(tasks):
            for seed in (0, 1, 2):
                w.writerow([t, "iql-c100k", "act_temperature=1", seed, 50.0])
                w.writerow([t, "gmpo-c100k-pb1024", "act_temperature=0", seed, 60.0 if i < 4 else 40.0])
                w.writerow([t, "gmpo-c100k-pb1024", "act_temperature=1", seed, 0.0])
                w.writerow([t, "gmpg-c100k-rk4", "act_temperature=0", seed, 50.0 + seed])
    me = [page.parse_task(t).name for t in page.MEDIUM_EXPERT]
    with open(tmp_path / "medium-expert-recipe.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerow([me[0], "bc", 1, 70.0, "", "", 2, 0.08, "0", "70.000"])
        w.writerow([me[0], "gmpo", 3, 10.0, 0.0, "", 10, 2.0, "0 1 2", "10.000 10.000 10.000"])  # not the rescore's
    with open(tmp_path / "medium-expert-temperature.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "algo", "setting", "seed", "score"])
        w.writerow([me[0], "iql", "act_temperature=1", 0, 90.0])
        w.writerow([me[0], "gmpo", "act_temperature=0", 0, 97.0])
        for seed in (0, 1, 2):
            w.writerow([me[0], "gmpg", "act_temperature=1", seed, 79.0 + seed])
    md = page.headline(tmp_path)
    lines = md.splitlines()
    assert lines[2].startswith("| hopper-medium-v5 | 37.5 | 2.0 ± 1.0 (3) | 99.0 (1) | 50.0 ± 0.0 (3) | "
                               "60.0 ± 0.0 (3) | 0.0 ± 0.0 (3) | 51.0 ± 0.6 (3) | - |")
    assert lines[8] == ("| hopper-medium-expert-v5 | 52.4 | 70.0 (1) | - | 90.0 (1) | 97.0 (1) | - | - | "
                        "80.0 ± 0.6 (3) |")
    assert lines[9] == "| walker2d-medium-expert-v5 | 53.6 |" + " - |" * 7 and len(lines[:11]) == 11
    assert "gmpo T=0: above iql on 4 of 6, above the data on 6 of 6" in md  # its one-seed medium-expert cell: not
    # counted
    assert "gmpo T=1: above iql on 0 of 6, above the data on 0 of 6" in md
    assert "td3bc: above iql on 0 of 0" in md  # one seed everywhere: shown, never counted
    assert "gmpg T=0: above iql on 6 of 6" in md
    assert "gmpg T=1: above iql on 0 of 0, above the data on 1 of 1" in md  # 3 seeds; IQL's cell has one, so no
    # comparison with it is counted either way
    rows = list(csv.DictReader(open(tmp_path / "headline.csv")))
    assert len(rows) == 9 * len(page.HEADLINE) and (tmp_path / "headline.png").stat().st_size > 0
    assert [(r["table"], r["algo"], r["setting"], r["train_minutes"]) for r in rows
            if r["task"] == me[0] and r["column"] == "gmpg T=1"] == [("medium-expert-temperature", "gmpg",
                                                                    "act_temperature=1", "")]
    assert [r["train_minutes"] for r in rows if r["task"] == me[0] and r["column"] == "gmpo T=0"] == ["10"]  # its
    # runs' cost, from their suite table


def test_the_all_methods_table_takes_each_column_from_its_suite_table_with_the_rows_own_stats_and_costs(tmp_path):
    """results_page.py --all-cpu: each column from its own committed suite CSV (iql from the baselines table, not
    the other table's row of the same name), the cell's mean and s.e. the row's own (unrounded) ones, a cost table
    of train minutes / act ms, and '-' for a method without runs on a task."""
    import csv

    pytest.importorskip("matplotlib")
    page = _load_bench_script("results_page")
    tasks = [page.parse_task(t).name for t in page.SIX]
    head = ["task", "algo", "n", "mean", "se", "data_score", "train_minutes", "act_ms", "seeds", "scores"]
    with open(tmp_path / "six-tasks-cpu.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for t in tasks:
            for a in ("bc", "td3bc", "gmpg"):
                w.writerow([t, a, 1, 10.0, "", 0, 2, 0.5, "0", "10.000"])
            w.writerow([t, "iql", 1, 0.0, "", 0, 1, 0.08, "0", "0.000"])  # superseded by the baselines table's
    with open(tmp_path / "six-tasks-cpu-baselines.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for t in tasks:
            w.writerow([t, "iql", 2, 20.00049, 0.25, 0, 3, 0.08, "0 1", "20.000 20.001"])
            for a in ("gmpo", "sfbc", "srpo", "fql", "idql", "qgpo"):
                w.writerow([t, a, 1, 30.0, "", 0, 7.5, 33.47, "0", "30.000"])
        w.writerow([tasks[0], "dql", 1, 41.7, "", 0, 66.3, 6.74, "0", "41.700"])
    md = page.compose("six-tasks-cpu-all", tmp_path)
    lines = md.splitlines()
    assert lines[0] == ("| task | data | bc | td3bc | iql | gmpo | gmpg | sfbc | srpo | fql | idql | qgpo | dql |")
    assert lines[2] == ("| hopper-medium-v5 | 37.5 | 10.0 (1) | 10.0 (1) | 20.0 ± 0.2 (2) | 30.0 (1) | 10.0 (1) | "
                        "30.0 (1) | 30.0 (1) | 30.0 (1) | 30.0 (1) | 30.0 (1) | 41.7 (1) |")
    assert lines[3].endswith("| 30.0 (1) | - |")  # no dql run on walker2d-medium
    assert "gmpo: above iql on 6 of 6" in md and "bc: above iql on 0 of 6" in md and "dql: above iql on 1 of 1" in md
    assert ("| hopper-medium-v5 | 2 min / 0.5 ms | 2 min / 0.5 ms | 3 min / 0.08 ms | 7.5 min / 33.47 ms | "
            "2 min / 0.5 ms |") in md
    costs = md.split("Cost:")[0].split("Mean ±")[1].splitlines()
    assert [r for r in costs if r.startswith("| walker2d-medium-v5 |")][0].endswith("| 7.5 min / 33.47 ms | - |")
    rows = list(csv.DictReader(open(tmp_path / "six-tasks-cpu-all.csv")))
    assert len(rows) == 6 * len(page.ALL_CPU) and (tmp_path / "six-tasks-cpu-all.png").stat().st_size > 0
    assert (rows[2]["algo"], rows[2]["table"], rows[2]["train_minutes"]) == ("iql", "six-tasks-cpu-baselines", "3")


def test_the_recipe_table_takes_a_rescore_columns_costs_from_its_suite_table(tmp_path):
    """results_page.py --all-recipe: the headline's rescored columns (IQL's actor, GMPO and GMPG at T = 0) beside
    the baselines' suite rows; a rescored column's scores from its per-seed rescore rows, its train minutes and act
    latency from the suite table that holds the same runs; a method with runs on one task only ('-' elsewhere)."""
    import csv

    pytest.importorskip("matplotlib")
    page = _load_bench_script("results_page")
    tasks = [page.parse_task(t).name for t in page.SIX]
    head = ["task", "algo", "n", "mean", "se", "data_score", "train_minutes", "act_ms", "seeds", "scores"]
    tables = {"six-tasks-cpu": [("bc", 10.0), ("td3bc", 11.0), ("iql", 0.0)],
              "six-tasks-cpu-baselines": [(a, 30.0) for a in ("sfbc", "fql", "qgpo", "dql", "srpo", "iql")],
              "six-tasks-c100k": [("iql-c100k", 0.0), ("gmpo-c100k-pb1024", 0.0), ("gmpg-c100k-rk4", 0.0)]}
    for name, algos in tables.items():
        with open(tmp_path / f"{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            for t in tasks:
                for i, (a, score) in enumerate(algos):
                    w.writerow([t, a, 1, score, "", 0, 4 + i, 0.5 + i, "0", f"{score:.3f}"])
    with open(tmp_path / "six-tasks-recipe-baselines.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerow([tasks[1], "srpo-recipe", 2, 45.5, 0.5, 0, 20, 0.08, "0 1", "45.000 46.000"])
    with open(tmp_path / "six-tasks-c100k-temperature.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "algo", "setting", "seed", "score"])
        for t in tasks:
            for seed in (0, 1):
                w.writerow([t, "iql-c100k", "act_temperature=1", seed, 40.0])
                w.writerow([t, "iql-c100k", "act_temperature=0", seed, 99.0])  # not the column's setting
                w.writerow([t, "gmpo-c100k-pb1024", "act_temperature=0", seed, 50.0 + seed])
                w.writerow([t, "gmpg-c100k-rk4", "act_temperature=0", seed, 20.0])
    md = page.compose("six-tasks-recipe-all", tmp_path)
    lines = md.splitlines()
    assert lines[0] == "| task | data | bc | td3bc | iql | gmpo T=0 | gmpg T=0 | sfbc | srpo | fql | qgpo | dql |"
    assert lines[2] == ("| hopper-medium-v5 | 37.5 | 10.0 (1) | 11.0 (1) | 40.0 ± 0.0 (2) | 50.5 ± 0.5 (2) | "
                        "20.0 ± 0.0 (2) | 30.0 (1) | - | 30.0 (1) | 30.0 (1) | 30.0 (1) |")
    assert lines[3].split(" | ")[8] == "45.5 ± 0.5 (2)"  # srpo's walker2d-medium row, the suite row's own stats
    assert "gmpo T=0: above iql on 6 of 6" in md and "srpo: above iql on 1 of 1" in md
    assert "gmpg T=0: above iql on 0 of 6" in md
    assert ("| hopper-medium-v5 | 4 min / 0.5 ms | 5 min / 1.5 ms | 4 min / 0.5 ms | 5 min / 1.5 ms | 6 min / 2.5 ms "
            "| 4 min / 0.5 ms | - | 5 min / 1.5 ms |") in md
    assert "a shared IQL critic's minutes are not counted" in md
    rows = list(csv.DictReader(open(tmp_path / "six-tasks-recipe-all.csv")))
    assert len(rows) == 6 * len(page.ALL_RECIPE) and (tmp_path / "six-tasks-recipe-all.png").stat().st_size > 0
    assert [r["scores"] for r in rows if r["column"] == "iql"][0] == "40.000 40.000"


@pytest.mark.parametrize("algo", registered())
def test_every_algorithm_trains_and_evaluates_from_the_cli(hopper_like, tmp_path, capsys, algo):  # noqa: F811
    """``genpolicy train NAME --dataset ... --env ...`` runs each method end to end (every stage, the final
    evaluation in the environment), and ``genpolicy eval`` scores the checkpoint it wrote."""
    pytest.importorskip("gymnasium")
    from genpolicy.cli import main

    sets = [x for kv in tiny_sets(algo) for x in ("--set", kv)]
    run = tmp_path / "run"
    assert main(["train", algo, "--dataset", str(hopper_like), "--env", "Hopper-v5", "--run-dir", str(run),
                 "--no-progress", *sets]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_score"] is not None and summary["algo"] == algo
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoint.pt"), "--episodes", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env"] == "Hopper-v5" and out["episodes"] == 1 and "score_mean" in out


def test_the_selected_checkpoint_is_reported_on_episodes_it_was_not_chosen_on(hopper_like, tmp_path):  # noqa: F811
    """The table's selected column: per seed, best.pt (the best of the evaluations during training) scored again on
    episodes reset with held-out seeds; its score is an independent evaluation of that checkpoint on those seeds,
    and none of them was among the episodes that chose it."""
    pytest.importorskip("gymnasium")
    from genpolicy.policy import load_policy
    from genpolicy.rl.evaluate import evaluate_many
    from genpolicy.suite import parse_task, run_suite
    from genpolicy.suite.report import HELD_OUT_SEEDS

    sets = tiny_sets("gmpo") + ["policy_steps=6", "eval_every=2", "eval_episodes=2", "final_eval_episodes=3"]
    table = run_suite(["gmpo"], [parse_task(f"{hopper_like}:Hopper-v5")], [0, 1], ["cpu"], tmp_path / "s", sets,
                      progress=False)
    for seed in (0, 1):
        d = tmp_path / "s" / "hopper_like" / "gmpo" / f"seed-{seed}"
        summary, sel = json.loads((d / "summary.json").read_text()), json.loads((d / "selected.json").read_text())
        evals = summary["evals"]
        assert len(evals) == 3 and sel["selection_score"] == max(e["score"] for e in evals) == summary["best_score"]
        assert sel["selected_at"] == summary["best_at"]
        chosen_on = set(range(seed + 10_000, seed + 10_000 + 3))  # every evaluation's episodes (the closing: 3)
        reported_on = set(range(sel["report_env_seeds"][0], sel["report_env_seeds"][1] + 1))
        assert len(reported_on) == 3 and not chosen_on & reported_on
        policy = load_policy(d / "best.pt")
        policy.eval()
        again = evaluate_many([policy.act], "Hopper-v5", 3, seeds=[seed + HELD_OUT_SEEDS],
                              policy_seeds=[seed + HELD_OUT_SEEDS + 2345])[0]
        assert sel["score"] == pytest.approx(float(again.score), abs=1e-9)
    row = next(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert len(row["selected_scores"].split()) == 2
    assert "| task (selected checkpoint) | gmpo |" in table.read_text()


def test_a_deepmind_control_dataset_scores_its_mean_return_where_d4rl_has_no_reference():
    from genpolicy.suite.report import data_score

    assert data_score({"name": "cheetah-run-medium-replay-v0", "score_mean": None, "return_mean": 142.8}) == 142.8
    assert data_score({"name": "hopper-medium-v5", "score_mean": 37.5, "return_mean": 1200.0}) == 37.5
    assert data_score({"name": "my-own-task-v0", "score_mean": None, "return_mean": 10.0}) is None  # no reference


def test_a_suite_table_says_its_scores_are_raw_returns_where_its_tasks_are_deepmind_control(tmp_path):
    """The table's footer names the unit from each task's environment (its name where it has none): raw return on
    DeepMind Control, success rate on the mazes, D4RL's normalization on locomotion, each with its tasks when mixed."""
    import json

    from genpolicy.suite import Task, collect, write_table
    from genpolicy.suite.report import score_words

    for task in ("cheetah-run-medium-replay-v0", "hopper-medium-v5", "my-maze-data"):
        d = tmp_path / task / "bc" / "seed-0"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"final_score": 10.0}))
        (d / "act_latency.json").write_text(json.dumps({"ms_batch1": 1.0}))
    dmc = write_table(collect(tmp_path, [Task("cheetah-run-medium-replay-v0", "dm_control/cheetah-run-v0")], ["bc"]),
                      tmp_path / "a")
    assert "Final episode return (raw: no D4RL reference returns for this environment), mean" in dmc.read_text()
    loco = write_table(collect(tmp_path, [Task("hopper-medium-v5", None)], ["bc"]), tmp_path / "b")
    assert "Final D4RL-normalized score, mean" in loco.read_text()
    maze = write_table(collect(tmp_path, [Task("my-maze-data", "genpolicy/antmaze-umaze-v0")], ["bc"]), tmp_path / "c")
    assert "Final success rate (%), mean" in maze.read_text()  # the env decides: the name alone says nothing
    rows = collect(tmp_path, [Task("cheetah-run-medium-replay-v0", None), Task("hopper-medium-v5", "Hopper-v5")],
                   ["bc"])
    assert score_words(rows) == ("score (episode return on cheetah-run-medium-replay-v0; D4RL-normalized score on "
                                 "hopper-medium-v5)")


def test_todo_lists_the_cells_that_neither_a_run_here_nor_the_committed_table_holds(tmp_path, monkeypatch):
    """benchmarks/todo.py: a seed counts as done when its run folder here has a summary or the committed CSV lists
    it; the rest come out one command per task and seed (seeds outermost), and a task whose dataset is not here
    as a comment."""
    import json

    todo = _load_bench_script("todo")
    suite, docs = tmp_path / "suite", tmp_path / "docs"
    docs.mkdir()
    data = tmp_path / "data.hdf5"
    data.write_bytes(b"")  # a path that exists: the dataset is here
    monkeypatch.setitem(todo.TABLES, "t", (str(suite), [f"{data}:Env-v5", "absent-medium-v0:Env-v5"], ["bc", "iql"]))
    monkeypatch.setitem(todo.BENCH_ARGS, "t", ["--budget", "cpu", "recipe"])
    (docs / "t.csv").write_text(  # committed: bc seeds 0 and 2 on the present task
        "task,algo,n,mean,se,data_score,train_minutes,act_ms,seeds,scores\n"
        "data,bc,2,50.0,1.0,,2.0,0.08,0 2,49.000 51.000\n")
    d = suite / "data" / "iql" / "seed-0"  # here: iql seed 0 finished, iql seed 1 started only
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"final_score": 1.0}))
    (suite / "data" / "iql" / "seed-1").mkdir()
    assert todo.missing("t", [0, 1, 2], docs) == [
        ("absent-medium-v0:Env-v5", 0, ["bc", "iql"]), (f"{data}:Env-v5", 1, ["bc", "iql"]),
        ("absent-medium-v0:Env-v5", 1, ["bc", "iql"]), (f"{data}:Env-v5", 2, ["iql"]),
        ("absent-medium-v0:Env-v5", 2, ["bc", "iql"])]
    assert todo.missing("t", [0], docs, algos=["bc"]) == [("absent-medium-v0:Env-v5", 0, ["bc"])]
    lines = todo.commands("t", [1], docs)
    assert lines[0] == (f"genpolicy bench --algos bc iql --tasks {data}:Env-v5 --seeds 1 --budget cpu recipe "
                        f"--out {suite}")
    assert lines[1].startswith("# absent-medium-v0 is not here") and len(lines) == 2
    with pytest.raises(ValueError, match="no bench arguments"):
        todo.commands("six-tasks-cpu", [0], docs)
