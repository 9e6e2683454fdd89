"""Evaluating several policies at once (one vector env, each policy on its own episodes and RNG stream) gives
each policy exactly its evaluation alone (the seeds of a stacked run evaluate together)."""

import numpy as np
import pytest
import torch

from genpolicy.rl.evaluate import evaluate, evaluate_many


def _policy(k: int):
    """Hopper-v5 (11-D observations, 3-D actions): a fixed linear map plus torch noise, so the result depends on
    the RNG stream the policy draws from; policy k differs in its weights and noise scale."""
    w = torch.linspace(-1, 1, 33).reshape(11, 3) * (0.5 + k)

    def act(obs):
        return torch.tanh(torch.as_tensor(obs) @ w + (0.2 + 0.3 * k) * torch.randn(len(obs), 3)).numpy()
    return act


def test_evaluate_many_equals_each_policy_alone_and_leaves_the_rng_alone():
    pytest.importorskip("gymnasium")
    acts, seeds, policy_seeds = [_policy(k) for k in range(3)], [10, 20, 10], [5, 6, 7]
    before = torch.get_rng_state()
    many = evaluate_many(acts, "Hopper-v5", episodes=3, seeds=seeds, policy_seeds=policy_seeds)
    assert torch.equal(torch.get_rng_state(), before)
    alone = [evaluate(a, "Hopper-v5", episodes=3, seed=s, policy_seed=p) for a, s, p in zip(acts, seeds, policy_seeds)]
    for m, a in zip(many, alone):
        np.testing.assert_array_equal(m.returns, a.returns)
        np.testing.assert_array_equal(m.lengths, a.lengths)
        np.testing.assert_array_equal(m.normalized, a.normalized)
    # the policies end at different times: the shared vector env runs on past a policy's last episode
    assert len({int(m.lengths.max()) for m in many}) > 1
    # and the streams matter: the same policy under another policy seed gives other returns
    other = evaluate(acts[0], "Hopper-v5", episodes=3, seed=10, policy_seed=99)
    assert not np.array_equal(other.returns, alone[0].returns)


def test_evaluate_many_refuses_mismatched_seeds_in_one_line():
    with pytest.raises(ValueError, match="2 policies, 1 env seeds"):
        evaluate_many([_policy(0), _policy(1)], "Hopper-v5", seeds=[0])


def test_many_episodes_run_in_rounds_of_bounded_size_with_the_same_returns(monkeypatch):
    """``episodes`` beyond EPISODES_PER_ROUND run in rounds (never more environments at once than a round holds),
    the env seeds continuing, so a deterministic policy scores exactly as in one round."""
    pytest.importorskip("gymnasium")
    import numpy as np

    import genpolicy.rl.evaluate as ev

    act = lambda o: np.tanh(o[:, :1] * 0.3)  # noqa: E731  (deterministic)
    whole = ev.evaluate(act, "Pendulum-v1", episodes=5, seed=7, max_steps=20)
    sizes, make = [], ev.make_vec_env
    monkeypatch.setattr(ev, "make_vec_env", lambda env_id, k: sizes.append(k) or make(env_id, k))
    monkeypatch.setattr(ev, "EPISODES_PER_ROUND", 2)
    rounds = ev.evaluate(act, "Pendulum-v1", episodes=5, seed=7, max_steps=20)
    assert sizes == [2, 2, 1]
    np.testing.assert_array_equal(rounds.returns, whole.returns)
    two = ev.evaluate_many([act, act], "Pendulum-v1", episodes=5, seeds=[7, 9], max_steps=20)
    assert sizes[3:] == [4, 4, 2]  # two policies: two rounds' worth of environments at a time
    np.testing.assert_array_equal(two[0].returns, whole.returns)
