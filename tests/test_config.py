"""Config fields with a fixed set of values are Literal types: one list, checked once, shown by --help."""

import dataclasses
import pathlib
import typing

import pytest

from genpolicy.cli import main
from genpolicy.config import literal_choices, resolve_config
from genpolicy.nets import NETS
from genpolicy.paths import PATHS
from genpolicy.rl.algos import ALGORITHMS, GMPGConfig, GMPOConfig
from genpolicy.solvers import FIXED_STEP, SOLVERS

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_literal_fields_come_from_the_registries():
    hints = typing.get_type_hints(GMPGConfig)
    assert literal_choices(hints["path"]) == tuple(PATHS)
    assert literal_choices(hints["net"]) == tuple(NETS)
    assert literal_choices(hints["train_solver"]) == tuple(FIXED_STEP)
    assert set(SOLVERS) <= set(literal_choices(hints["act_solver"]))
    for cls in ALGORITHMS.values():  # defaults are allowed values
        cls.Config()


def test_a_bad_value_is_one_clear_error():
    with pytest.raises(ValueError, match=r"GMPOConfig.path='nope': expected one of \['vpsde', 'gvp'"):
        GMPOConfig(path="nope")
    with pytest.raises(ValueError, match="train_solver='dpm2'"):
        GMPGConfig(train_solver="dpm2")


def test_help_lists_the_choices_and_argparse_rejects_others(capsys):
    with pytest.raises(SystemExit):
        main(["train", "gmpo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "one of awr, softmax" in out and "one of vpsde, gvp, linear, icfm, sf2m" in out
    with pytest.raises(SystemExit) as e:
        main(["train", "gmpo", "--dataset", "x", "--variant", "qgpo"])
    assert e.value.code == 2 and "invalid choice: 'qgpo'" in capsys.readouterr().err


def test_set_values_are_checked_and_yaml_1_1_floats_are_read(capsys):
    assert main(["train", "gmpo", "--dataset", "x", "--set", "variant=qgpo"]) == 2
    assert "GMPOConfig.variant='qgpo': expected one of ['awr', 'softmax']" in capsys.readouterr().err
    cfg = resolve_config(GMPOConfig, [], {}, {}, ["policy_lr=3e-4", "beta=2"])
    assert cfg.policy_lr == 3e-4 and isinstance(cfg.beta, float)
    with pytest.raises(ValueError, match="expected float"):
        resolve_config(GMPOConfig, [], {}, {}, ["beta=fast"])


def test_budgets_in_epochs_become_steps_for_the_dataset():
    from genpolicy.config import load_presets, steps_from_epochs

    cfg = resolve_config(GMPOConfig, ["paper"], load_presets("gmpo"), {}, [])
    assert (cfg.critic_epochs, cfg.policy_epochs, cfg.batch_size) == (5000, 10000, 4096)  # the paper's code
    got = steps_from_epochs(cfg, 100_000)
    assert (got.critic_steps, got.policy_steps) == (122_071, 244_141)  # ceil(epochs * rows / batch)
    plain = GMPOConfig(critic_steps=7)
    assert steps_from_epochs(plain, 100_000) == plain  # 0 epochs: the step counts stand
    own = steps_from_epochs(dataclasses.replace(cfg, policy_batch_size=1000), 100_000)
    assert (own.critic_steps, own.policy_steps) == (122_071, 1_000_000)  # the policy's epochs at its own batch


def test_gmpg_paper_budget_follows_the_papers_code_per_task():
    """GMPG's paper preset: the code's epochs (behaviour 2000, critic 5000 at 4096; policy 50 at 40960, 500 on
    hopper-medium, 1000 and its learning rates on two medium-replay tasks), the KL in bits per action dimension;
    the suite adds paper-<task> after <task> under the paper budget only."""
    from genpolicy.config import steps_from_epochs
    from genpolicy.suite.runner import _config
    from genpolicy.suite import Task

    cfg, names = _config("gmpg", ["paper"], Task("walker2d-medium-v5", None), [])
    assert names == ["paper", "walker2d-medium"]
    got = steps_from_epochs(cfg, 100_000)
    assert (got.behaviour_steps, got.critic_steps, got.policy_steps) == (48_829, 122_071, 123)
    assert (cfg.kl_unit, cfg.grad_clip, cfg.train_steps, cfg.beta, cfg.policy_lr) == ("bit_per_dim", 0.0, 1000, 1.0,
                                                                                      1e-4)
    cfg, names = _config("gmpg", ["paper"], Task("walker2d-medium-replay-v5", None), [])
    assert names == ["paper", "walker2d-medium-replay", "paper-walker2d-medium-replay"]
    assert (cfg.policy_epochs, cfg.policy_lr, cfg.beta) == (1000, 2e-5, 8.0)  # the code's, over Table 8's beta 4
    cfg, _ = _config("gmpg", ["paper"], Task("hopper-medium-replay-v5", None), ["policy_lr=1e-4"])
    assert (cfg.policy_epochs, cfg.policy_lr, cfg.beta) == (1000, 1e-4, 8.0)  # --set still wins
    assert _config("gmpg", ["paper"], Task("hopper-medium-v5", None), [])[0].policy_epochs == 500
    cfg, names = _config("gmpg", ["cpu"], Task("walker2d-medium-replay-v5", None), [])
    assert names == ["cpu", "walker2d-medium-replay"]  # no paper-<task> under the cpu budget
    assert (cfg.policy_epochs, cfg.policy_lr, cfg.beta, cfg.kl_unit) == (0, 1e-4, 4.0, "nat")


def test_every_preset_of_every_algorithm_resolves():
    """A preset key that is not a field, or a value of the wrong type, fails here rather than in a user's run."""
    from genpolicy.config import load_presets
    from genpolicy.rl.algos import ALGORITHMS

    checked = 0
    for name, cls in ALGORITHMS.items():
        presets = load_presets(name)
        for preset in presets:
            cfg = resolve_config(cls.Config, [preset], presets, {}, [])
            assert isinstance(cfg, cls.Config)
            checked += 1
        if not name.startswith("toy"):
            assert {"cpu", "paper"} <= set(presets), f"{name} needs a cpu and a paper preset"
    assert checked >= 30


def test_task_presets_reach_every_algorithm_under_its_own():
    """presets/tasks.yaml: halfcheetah-medium's reward scale in every algorithm's preset of that name, with the
    algorithm's own fields kept (GMPO's beta) and winning where both set one."""
    from genpolicy.config import load_presets
    from genpolicy.rl.algos import ALGORITHMS, GMPOConfig

    for name in ALGORITHMS:
        if not name.startswith("toy"):
            assert load_presets(name)["halfcheetah-medium"]["reward_scale"] == "locomotion0", name
    cfg = resolve_config(GMPOConfig, ["cpu", "halfcheetah-medium"], load_presets("gmpo"), {}, [])
    assert (cfg.reward_scale, cfg.beta) == ("locomotion0", 1.0)
    hopper = resolve_config(GMPOConfig, ["cpu", "hopper-medium"], load_presets("gmpo"), {}, [])
    assert hopper.reward_scale == "locomotion"


def test_the_recipe_preset_is_the_recipe_the_results_page_measured_and_shares_one_critic():
    """--preset cpu --preset recipe: the `cpu` preset with 100k critic steps for iql, gmpo and gmpg (one critic per
    task and seed in a suite: the same critic key), GMPO at 1024 rows per policy step acting from the prior's mean."""
    from genpolicy.config import load_presets
    from genpolicy.rl.algos import ALGORITHMS
    from genpolicy.suite.plan import critic_key as _critic_key
    from genpolicy.suite.runner import _config
    from genpolicy.suite import parse_task

    cfgs = {a: resolve_config(ALGORITHMS[a].Config, ["cpu", "recipe"], load_presets(a), {}, [])
            for a in ("iql", "gmpo", "gmpg")}
    assert all(c.critic_steps == 100_000 and c.batch_size == 256 for c in cfgs.values())
    g = cfgs["gmpo"]
    assert (g.policy_batch_size, g.act_temperature, g.policy_steps, g.net) == (1024, 0.0, 30_000, "mlp")
    assert cfgs["gmpg"].act_temperature == 1.0 and cfgs["gmpg"].train_solver == "rk4"
    task = parse_task("walker2d-medium-v5:Walker2d-v5")
    keys = [_critic_key(_config(a, ["cpu", "recipe"], task, [])[0]) for a in cfgs]
    assert keys[0] is not None and keys[0] == keys[1] == keys[2]
    # `genpolicy bench --budget cpu recipe` takes any algorithm: the IQL-critic ones share that critic, the others
    # (no critic, or their own kind) are their cpu preset unchanged
    shipped = [a for a in ALGORITHMS if (REPO / "genpolicy" / "presets" / f"{a}.yaml").exists()]  # not tests' toys
    assert len(shipped) >= 11
    for a in shipped:
        cfg, _ = _config(a, ["cpu", "recipe"], task, [])
        key = _critic_key(cfg)
        if key is not None:
            assert key == keys[0], a
        else:
            assert cfg == _config(a, ["cpu"], task, [])[0], a


def test_ranges_are_declared_beside_their_fields_and_bound_exactly():
    import dataclasses

    from genpolicy.config import Range, field_ranges
    from genpolicy.rl.algos import ALGORITHMS, GMPOConfig

    r = Range(gt=0, le=1)
    assert 1 in r and 0.5 in r and 0 not in r and 1.0001 not in r and True not in r and "1" not in r
    assert (Range(ge=0).text(), Range(gt=0).text(), r.text("beta")) == (">=0", ">0", "0<beta<=1")
    ranges = field_ranges(GMPOConfig)
    assert ranges["expectile"] == Range(gt=0, lt=1) and ranges["seed"] == Range(ge=0)  # base classes' fields too
    with pytest.raises(ValueError, match=r"GMPOConfig.expectile=1.0: must be 0<expectile<1"):
        GMPOConfig(expectile=1.0)
    with pytest.raises(ValueError, match=r"net_hidden=\(16, 0\): must be >=1"):
        GMPOConfig(net_hidden=(16, 0))
    for cls in {a.Config for a in ALGORITHMS.values()}:
        assert not hasattr(cls, "limits")  # no second place for a range
        for name, rng in field_ranges(cls).items():  # every default is in its own range
            default = {f.name: f.default for f in dataclasses.fields(cls)}[name]
            assert all(v in rng for v in (default if isinstance(default, tuple) else (default,))), (cls, name)


def test_renamed_fields_load_from_old_files_and_name_their_new_names():
    """TD3+BC's hidden and tau and FQL's flow_hidden are now the shared names (actor_hidden/critic_hidden, polyak,
    net_hidden): a checkpoint's config with the old keys loads with their values; --set with one says the new name."""
    from genpolicy.rl.algos import config_from_dict
    from genpolicy.rl.algos.td3bc import TD3BCConfig

    cfg = config_from_dict("td3bc", {"hidden": [64, 32], "tau": 0.01, "steps": 5})
    assert (cfg.actor_hidden, cfg.critic_hidden, cfg.polyak, cfg.steps) == ([64, 32], [64, 32], 0.01, 5)
    assert config_from_dict("fql", {"flow_hidden": (8,)}).net_hidden == (8,)
    with pytest.raises(ValueError, match="config key 'tau' of TD3BCConfig is now 'polyak'"):
        resolve_config(TD3BCConfig, [], {}, {}, ["tau=0.01"])


def test_an_unknown_key_lists_the_fields_only_and_a_classvar_is_not_a_key():
    from genpolicy.config import coerce
    from genpolicy.rl.algos.iql import IQLAWRConfig

    for key in ("behaviour_steps", "tiny", "resume_safe"):
        with pytest.raises(ValueError, match=rf"unknown config key '{key}'; valid keys: \[") as e:
            coerce(IQLAWRConfig, key, "3")
        listed = str(e.value).split("valid keys: ")[1]
        assert "'beta'" in listed and not any(f"'{c}'" in listed for c in ("tiny", "resume_safe", "act_fields"))
