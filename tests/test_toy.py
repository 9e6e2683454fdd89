"""Swiss-roll demo: short training beats a single Gaussian for every model; the CLI writes its plots."""

import json

import torch

from genpolicy.analytic import gaussian_log_prob
from genpolicy.cli import main
from genpolicy.demos.toy import TOY_MODELS, ToyConfig, ToySpec, roll_value, swiss_roll, train_toy_model


def test_swiss_roll_and_value_range():
    x, v = swiss_roll(5000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5000, 2) and v.shape == (5000,)
    assert -3.5 <= float(v.min()) < -3.4 and 1.4 < float(v.max()) <= 1.5
    r = x.norm(dim=1)
    inner, outer = r[v < -3.0].mean(), r[v > 1.0].mean()
    assert inner < 0.5 * outer  # value grows outward along the spiral


def test_roll_value_extends_the_data_values():
    x, v = swiss_roll(3000, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(roll_value(x), v, atol=1e-4)
    far = roll_value(torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    assert far.tolist() == [-3.5, 1.5]


def test_every_model_beats_a_fitted_gaussian_after_short_training():
    torch.manual_seed(0)
    train, _ = swiss_roll(10000, generator=torch.Generator().manual_seed(1))
    test, _ = swiss_roll(1000, generator=torch.Generator().manual_seed(2))
    gauss = float(gaussian_log_prob(test, train.mean(0), torch.cov(train.T)).mean())
    cfg = ToyConfig(train_steps=1000, batch_size=256, progress=False)
    # the demo's models, plus denoising score matching with a noise-predicting network (Eq 23, 24)
    specs = {**TOY_MODELS, "VP-SDE DSM": ToySpec("VP-SDE DSM", "vpsde", param="noise", loss="score"),
             "VP-SDE DSM-ML": ToySpec("VP-SDE DSM-ML", "vpsde", param="noise", loss="score",
                                      weighting="maximum_likelihood")}
    for name, spec in specs.items():
        model, losses = train_toy_model(spec, train, cfg)
        assert losses[-1][1] < losses[0][1], name
        model.eval()
        ll = float(model.log_prob(test, steps=16).mean())
        assert ll > gauss + 0.1, (name, ll, gauss)


def test_cli_toy_writes_plots_and_results(tmp_path, capsys):
    out = tmp_path / "toy"
    rc = main(["toy", "--out", str(out), "--train-steps", "30", "--n-train", "2000", "--n-test", "200",
               "--models", "GVP", "OT-CFM", "--no-progress", "--sample-steps", "8", "--ll-steps", "4",
               "--gmpg-steps", "3", "--gmpg-solver-steps", "4"])
    assert rc == 0
    for f in ("data.png", "samples.png", "trajectories.png", "losses.png", "rl_trajectories.png", "results.json"):
        assert (out / f).stat().st_size > 1000 or f == "results.json"
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"GVP", "OT-CFM"}
    assert set(res["rl"]["samples"]) == {"behaviour", "GMPO", "GMPG"} and len(res["rl"]["gmpg_history"]) == 1
    assert "Gaussian" in capsys.readouterr().out


def test_cli_rejects_unknown_model(capsys):
    assert main(["toy", "--models", "DDPM", "--no-progress", "--out", "/tmp/never"]) == 2
    assert "unknown toy model" in capsys.readouterr().err
