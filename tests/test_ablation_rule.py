"""The ablation's adoption rule (benchmarks/research/ablation_rule.py), on made-up tables with known verdicts."""

import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "research" / "ablation_rule.py"
_spec = importlib.util.spec_from_file_location("ablation_rule", _path)
rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rule)

BASE = {f"t{i}": (50.0, 1.0) for i in range(6)}


def test_adopted_when_higher_on_four_with_no_task_much_lower():
    v = {**BASE, "t0": (55.0, 1.0), "t1": (55.0, 1.0), "t2": (55.0, 1.0), "t3": (51.0, 1.0), "t4": (48.0, 1.0)}
    out = rule.verdict(BASE, v)  # t4: 2 below, within 2 s.e. of the difference (2 * sqrt(2) = 2.83)
    assert out["above"] == 4 and out["worse"] == [] and out["adopt"]
    assert out["mean_variant"] == pytest.approx(50 + (5 + 5 + 5 + 1 - 2) / 6)


def test_rejected_when_one_task_drops_beyond_two_standard_errors():
    v = {**BASE, "t0": (60.0, 1.0), "t1": (60.0, 1.0), "t2": (60.0, 1.0), "t3": (60.0, 1.0), "t4": (47.0, 1.0)}
    out = rule.verdict(BASE, v)  # t4: 3 below > 2.83
    assert out["worse"] == ["t4"] and not out["adopt"]


def test_rejected_when_above_on_three_however_large_the_gain():
    v = {**BASE, "t0": (90.0, 1.0), "t1": (90.0, 1.0), "t2": (90.0, 1.0)}
    out = rule.verdict(BASE, v)
    assert out["above"] == 3 and out["mean_variant"] > out["mean_base"] and not out["adopt"]


def test_tasks_a_variant_did_not_run_count_as_the_baseline(tmp_path):
    (tmp_path / "results.csv").write_text(
        "task,algo,n,mean,se,data_score,train_minutes,act_ms,seeds,scores\n"
        + "".join(f"t{i},gmpo,3,50,1,40,1,0.1,0 1 2,49 50 51\n" for i in range(6))
        + "".join(f"t{i},gmpo-code,3,53,1,40,1,0.1,0 1 2,52 53 54\n" for i in range(4)))
    res = rule.read(tmp_path / "results.csv")
    out = rule.verdict(res["gmpo"], res["gmpo-code"])
    assert [r["ran"] for r in out["rows"]] == [True] * 4 + [False] * 2
    assert out["above"] == 4 and out["adopt"]
    text = rule.main([str(tmp_path)])
    assert "| gmpo-code | gmpo | 50.0 → 52.0 | 4 of 6 | none | yes |" in text
    assert "| gmpg-vpsde | gmpg | not run yet |" in text


def _csv(tmp_path, cells):
    rows = "".join(f"{task},{algo},{n},{mean},1,40,1,0.1,,\n" for task, algo, n, mean in cells)
    (tmp_path / "results.csv").write_text("task,algo,n,mean,se,data_score,train_minutes,act_ms,seeds,scores\n" + rows)
    return rule.main([str(tmp_path)])


def test_no_verdict_until_every_task_and_seed_is_in(tmp_path):
    full = [(f"t{i}", "gmpg", 3, 50) for i in range(6)]
    better = [(f"t{i}", "gmpg-vpsde", 3, 60) for i in range(6)]
    assert "| gmpg-vpsde | gmpg | 50.0 → 60.0 | 6 of 6 | none | yes |" in _csv(tmp_path, full + better)
    # the last task still running for the change: tasks it lacks must not count as today's
    text = _csv(tmp_path, full + better[:5])
    assert "pending: today's on 6 of 6 tasks, the change on 5 of 6, 0 task(s) below 3 seeds |" in text
    # a cell at two seeds, and today's method on three tasks only
    assert "1 task(s) below 3 seeds |" in _csv(tmp_path, full[:5] + [("t5", "gmpg", 2, 50)] + better)
    assert "pending: today's on 3 of 6 tasks, the change on 3 of 6," in _csv(tmp_path, full[:3] + better[:3])
    # a change defined on four tasks gets its verdict at four
    gmpo = [(f"t{i}", "gmpo", 3, 50) for i in range(6)] + [(f"t{i}", "gmpo-code", 3, 40) for i in range(4)]
    assert "| gmpo-code | gmpo | 50.0 → 43.3 | 0 of 6 | t0, t1, t2, t3 | no |" in _csv(tmp_path, gmpo)


def test_the_per_task_table_gives_each_difference_with_its_standard_error(tmp_path):
    text = _csv(tmp_path, [("t0", "gmpg", 3, 50), ("t1", "gmpg", 3, 40), ("t0", "gmpg-no-clip", 3, 53)])
    assert "| gmpg-no-clip | t0 | 50.0 ± 1.0 | 53.0 ± 1.0 | +3.0 ± 1.4 |" in text
    assert "| gmpg-no-clip | t1 | 40.0 ± 1.0 | not run: counts as today's | |" in text


def test_a_suite_in_progress_is_read_from_its_finished_run_folders(tmp_path):
    import json

    for seed, score in [(0, 40.0), (1, 44.0)]:
        run = tmp_path / "t0" / "gmpg" / f"seed-{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"final_score": score, "seed_seconds": 60.0}))  # no
        # checkpoint: reading the scores must not load or time a policy
    (tmp_path / "t0" / "gmpg-vpsde" / "seed-0").mkdir(parents=True)  # started, not finished: no summary
    (tmp_path / "results.csv").write_text("task,algo,n,mean,se\nt0,gmpg,1,99,0\n")  # stale: written before seed 1
    res = rule.read_suite(tmp_path)
    assert res == {"gmpg": {"t0": (42.0, 2.0, 2)}}
    text = rule.main([str(tmp_path)])
    assert "Finished runs (seeds) so far: gmpg t0 (2)" in text and "| gmpg-vpsde | gmpg | not run yet |" in text
