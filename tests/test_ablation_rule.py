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
