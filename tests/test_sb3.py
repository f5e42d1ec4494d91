"""The Stable-Baselines3 bridge: VecEnv semantics, the features extractor, and SB3 / sb3-contrib
algorithms training unchanged on the env."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor

from textgym import TokenVecEnv
from textgym.sb3 import SB3VecEnv, TokenFeaturesExtractor

POLICY_KWARGS = dict(features_extractor_class=TokenFeaturesExtractor)


def test_vecenv_semantics(small_oracle_data, device):
    env = SB3VecEnv(TokenVecEnv(3, data=small_oracle_data, device=device))
    assert env.token_env.tokens.device.type == device.type
    env.seed(0)
    obs = env.reset()
    assert obs.shape == (3, 6) and obs.dtype == np.int64 and (obs == 50).all()
    total = np.zeros(3)
    for t in range(6):
        obs, rew, dones, infos = env.step(np.array([t, t + 1, t + 2]))
        total += rew
    assert dones.all() and (obs == 50).all()  # same-step autoreset
    for i in range(3):
        assert infos[i]["terminal_observation"].tolist() == [t + i for t in range(6)]
        assert infos[i]["episode"]["l"] == 6
        assert infos[i]["episode"]["r"] == pytest.approx(total[i], rel=1e-6)
        assert infos[i]["TimeLimit.truncated"] is False
    obs, rew, dones, infos = env.step(np.array([1, 1, 1]))
    assert not dones.any() and infos == [{}, {}, {}] and obs[:, 0].tolist() == [1, 1, 1]
    assert env.action_masks().shape == (3, 50)
    assert env.get_attr("vocab_size") == [50, 50, 50]
    assert len(env.env_method("action_masks", indices=[0, 2])) == 2
    assert env.env_is_wrapped(object) == [False] * 3 and env.env_is_wrapped(Monitor) == [True] * 3


def test_features_extractor_reads_only_the_prefix(small_oracle_data):
    space = TokenVecEnv(1, data=small_oracle_data).single_observation_space
    fx = TokenFeaturesExtractor(space, features_dim=16)
    obs = torch.tensor([[3, 4, 50, 50, 50, 50], [3, 4, 50, 50, 50, 50], [50] * 6, [3, 4, 5, 50, 50, 50]]).float()
    f = fx(obs)
    assert f.shape == (4, 16)
    torch.testing.assert_close(f[0], f[1])
    assert not torch.allclose(f[0], f[2]) and not torch.allclose(f[0], f[3])


class EpisodeRewards(BaseCallback):
    """Records the mean episode return of each rollout."""

    def __init__(self) -> None:
        super().__init__()
        self.means: list[float] = []
        self._buf: list[float] = []

    def _on_step(self) -> bool:
        self._buf += [i["episode"]["r"] for i in self.locals["infos"] if "episode" in i]
        return True

    def _on_rollout_end(self) -> None:
        if self._buf:
            self.means.append(float(np.mean(self._buf)))
        self._buf = []


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_sb3_raises_episode_reward_with_the_oracle_reward(small_oracle_data, algo):
    # Oracle log-likelihood as the reward (the perfect discriminator): the policy must learn
    # to produce sequences the oracle finds likelier.
    torch.manual_seed(0)
    env = SB3VecEnv(TokenVecEnv(32, data=small_oracle_data, seed=0))
    if algo == "ppo":
        model = PPO("MlpPolicy", env, n_steps=12, batch_size=128, n_epochs=4, learning_rate=3e-3, seed=0,
                    policy_kwargs=POLICY_KWARGS)
    else:
        model = A2C("MlpPolicy", env, n_steps=6, learning_rate=3e-3, seed=0, policy_kwargs=POLICY_KWARGS)
    cb = EpisodeRewards()
    model.learn(32 * 6 * 60, callback=cb)
    first, last = np.mean(cb.means[:5]), np.mean(cb.means[-5:])
    print(algo, first, last)
    assert last > first + 0.5, (first, last)


def test_contrib_and_off_policy_algorithms_run_unchanged(small_oracle_data):
    from sb3_contrib import MaskablePPO, RecurrentPPO

    env = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, seed=0))
    MaskablePPO("MlpPolicy", env, n_steps=6, batch_size=24, policy_kwargs=POLICY_KWARGS).learn(48)
    RecurrentPPO("MlpLstmPolicy", env, n_steps=6, batch_size=24, policy_kwargs=POLICY_KWARGS).learn(48)
    DQN("MlpPolicy", env, learning_starts=8, buffer_size=100, policy_kwargs=POLICY_KWARGS).learn(48)
    model = PPO("MlpPolicy", env, n_steps=6, batch_size=24, policy_kwargs=POLICY_KWARGS)
    model.learn(24)
    action, _ = model.predict(env.reset())
    assert action.shape == (4,)


def test_discriminator_callback_retrains_and_changes_rewards(small_oracle_data, tmp_path, device):
    import discriminators
    from stable_baselines3.common.logger import configure

    from textgym.sb3 import DiscriminatorCallback

    torch.manual_seed(0)
    disc = discriminators.make("rnn", vocab_size=50, max_length=6, hidden=16, emb_dim=8).to(device)
    venv = TokenVecEnv(16, data=small_oracle_data, discriminator=disc, seed=0, device=device)
    trainer = discriminators.DiscriminatorTrainer(disc, lr=1e-2, batch_size=32, seed=0)
    cb = DiscriminatorCallback(trainer=trainer, real_tokens=small_oracle_data.train, real_lengths=small_oracle_data.train_lengths, k=2)
    probe = small_oracle_data.test[:8]
    before_params = [p.detach().clone() for p in disc.parameters()]
    reward_before = venv.reward_fn._final(probe, torch.full((8,), 6))
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=6, batch_size=48, seed=0, policy_kwargs=POLICY_KWARGS,
                device=device)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(16 * 6 * 3, callback=cb)
    assert cb.rollouts == 3 and "loss" in cb.last_stats and math.isfinite(cb.last_stats["loss"])
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"discriminator/loss", "discriminator/acc_real", "discriminator/acc_fake"} <= set(header)
    assert any(not torch.equal(a, b) for a, b in zip(before_params, disc.parameters()))
    reward_after = venv.reward_fn._final(probe, torch.full((8,), 6))
    assert not torch.allclose(reward_before, reward_after)


def test_callback_updates_the_mc_rollout_policy(small_oracle_data, device):
    import discriminators

    from textgym.sb3 import DiscriminatorCallback, SB3PolicyGenerator

    disc = discriminators.make("rnn", vocab_size=50, max_length=6, hidden=16, emb_dim=8).to(device)
    venv = TokenVecEnv(8, data=small_oracle_data, discriminator=disc, reward="mc", n_rollouts=2, seed=0, device=device)
    assert venv.reward_fn.rollout_policy is small_oracle_data.oracle_on(device)  # the oracle itself on the CPU
    trainer = discriminators.DiscriminatorTrainer(disc, batch_size=16, seed=0)
    cb = DiscriminatorCallback(trainer=trainer, real_tokens=small_oracle_data.train, real_lengths=small_oracle_data.train_lengths)
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=6, batch_size=48, seed=0, policy_kwargs=POLICY_KWARGS,
                device=device)
    model.learn(48, callback=cb)
    policy = venv.reward_fn.rollout_policy
    assert isinstance(policy, SB3PolicyGenerator) and policy.policy is model.policy
    out = policy.rollout(small_oracle_data.test[:4].to(device), torch.tensor([0, 2, 4, 6], device=device),
                         generator=torch.Generator(device=device).manual_seed(0))
    assert out.device.type == device.type
    out = out.cpu()
    assert torch.equal(out[1, :2], small_oracle_data.test[1, :2]) and torch.equal(out[3], small_oracle_data.test[3])


def test_a_policy_without_a_prefix_distribution_is_refused_as_mc_rollout_policy_before_stepping(small_oracle_data):
    """DQN's policy has no token distribution and RecurrentPPO's needs its LSTM states: the
    callback says so when training starts, not with an internal error in the first step."""
    from sb3_contrib import RecurrentPPO

    import discriminators
    from textgym.sb3 import DiscriminatorCallback

    disc = discriminators.make("rnn", vocab_size=50, max_length=6, hidden=16, emb_dim=8)
    venv = TokenVecEnv(2, data=small_oracle_data, discriminator=disc, reward="mc", n_rollouts=2, seed=0)
    for model in (DQN("MlpPolicy", SB3VecEnv(venv), learning_starts=0, buffer_size=100, seed=0, policy_kwargs=POLICY_KWARGS),
                  RecurrentPPO("MlpLstmPolicy", SB3VecEnv(venv), n_steps=6, batch_size=12, seed=0,
                               policy_kwargs=POLICY_KWARGS)):
        with pytest.raises(ValueError, match="cannot complete an MC reward's prefixes"):
            model.learn(12, callback=DiscriminatorCallback(heldout=0))
        assert model.num_timesteps == 0
    # keeping the env's rollout policy (the oracle here) works
    DQN("MlpPolicy", SB3VecEnv(venv), learning_starts=0, buffer_size=100, seed=0, policy_kwargs=POLICY_KWARGS).learn(
        12, callback=DiscriminatorCallback(heldout=0, update_rollout_policy=False))
    assert venv.reward_fn.rollout_policy is small_oracle_data.oracle


def test_policy_generator_log_probs_match_the_policy(small_oracle_data, device):
    from textgym.sb3 import SB3PolicyGenerator

    venv = TokenVecEnv(4, data=small_oracle_data, seed=0, device=device)
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=6, batch_size=24, seed=0, policy_kwargs=POLICY_KWARGS,
                device=device)
    gen = SB3PolicyGenerator(model.policy, 50, 6, None)
    x = gen.sample(3, generator=torch.Generator(device=device).manual_seed(0))
    assert x.device.type == device.type
    lp = gen.log_probs(x)
    for t in range(6):  # one prefix at a time, through SB3's own evaluate_actions
        obs = x.clone()
        obs[:, t:] = 50
        _, ref, _ = model.policy.evaluate_actions(obs.float(), x[:, t])
        torch.testing.assert_close(lp[:, t], ref, rtol=1e-5, atol=1e-5)


class TrainerSteps(BaseCallback):
    """After each rollout (placed after the DiscriminatorCallback): the trainer's step count."""

    def __init__(self, trainer) -> None:
        super().__init__()
        self.trainer, self.counts = trainer, []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.counts.append(self.trainer.total_steps)


def test_discriminator_callback_trains_only_every_train_every_rollouts(small_oracle_data):
    import discriminators
    from textgym.sb3 import DiscriminatorCallback

    disc = discriminators.make("rnn", vocab_size=50, max_length=6, hidden=8, emb_dim=8)
    venv = TokenVecEnv(8, data=small_oracle_data, discriminator=disc, seed=0)
    trainer = discriminators.DiscriminatorTrainer(disc, batch_size=16, seed=0)
    cb = DiscriminatorCallback(trainer=trainer, train_every=2, heldout=0)
    steps = TrainerSteps(trainer)
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=6, batch_size=48, n_epochs=1, seed=0, policy_kwargs=POLICY_KWARGS)
    model.learn(8 * 6 * 4, callback=CallbackList([cb, steps]))
    assert cb.rollouts == 4
    grew = [b > a for a, b in zip([0, *steps.counts], steps.counts, strict=False)]
    assert grew == [False, True, False, True]


def test_discriminator_callback_evaluates_on_reals_it_never_trains_on_without_a_test_set(tmp_path, monkeypatch):
    """Data with no test set: the held-out reals come out of the training reals."""
    import discriminators
    from textgym.data import Corpus
    from textgym.sb3 import DiscriminatorCallback

    lines = [f"a{i % 6} b{i // 6}" + " c" * (i % 3) for i in range(60)]  # 60 distinct sentences
    assert len(set(lines)) == 60
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    data = Corpus(tmp_path / "c.txt")
    assert data.test is None

    class Recording:
        """A trainer that records the real sequences it is given."""

        def __init__(self, discriminator) -> None:
            self.discriminator, self.reals = discriminator, []

        def step(self, real, real_len, fake, fake_len, k=1):
            self.reals += [tuple(r[:n].tolist()) for r, n in zip(real, real_len, strict=True)]
            return {}

    evaluated = []

    def spy(discriminator, real, real_len, fake, fake_len, *args, **kwargs):
        evaluated.extend(tuple(r[:n].tolist()) for r, n in zip(real, real_len, strict=True))
        return {"balanced_acc": 0.5, "loss": 0.7}

    monkeypatch.setattr(discriminators, "evaluate", spy)
    disc = discriminators.make("rnn", vocab_size=data.vocab_size, max_length=data.max_length, hidden=8, emb_dim=8)
    venv = TokenVecEnv(8, data=data, discriminator=disc, seed=0)
    trainer = Recording(disc)
    cb = DiscriminatorCallback(trainer=trainer)
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=8, batch_size=64, n_epochs=1, seed=0, policy_kwargs=POLICY_KWARGS)
    model.learn(8 * 8 * 4, callback=cb)
    assert cb.rollouts == 4 and len(trainer.reals) >= 40  # one real per finished episode
    train = {tuple(r[:n].tolist()) for r, n in zip(data.train, data.train_lengths, strict=True)}
    heldout = set(evaluated)
    assert len(heldout) == 60 // 5 and heldout <= train  # the last fifth of the training sequences
    assert not heldout & set(trainer.reals)
    assert len(set(trainer.reals)) > 60 // 2  # trained on many of the other sequences


def test_train_pys_ppo_holds_out_reals_on_a_corpus_without_a_test_set(tmp_path):
    """The agent handed the callback the whole training set, so no reals were held out and no
    held-out accuracy was logged."""
    import agents
    from textgym.data import Corpus

    lines = [f"a{i % 6} b{i // 6}" + " c" * (i % 3) for i in range(60)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    data = Corpus(tmp_path / "c.txt")
    agent = agents.make("ppo", data, {"discriminator": "rnn", "num_envs": 4, "adv_steps": 2}, seed=0)
    held, train = agent.callback.heldout_real, agent.callback.real_tokens
    assert held is not None and len(held[0]) == 12 and len(train) == 48
    assert not {tuple(r.tolist()) for r in held[0]} & {tuple(r.tolist()) for r in train}


def test_a_resumed_ppo_run_reports_the_episodes_it_was_in_the_middle_of(small_oracle_data):
    """Rollouts shorter than an episode: a checkpoint falls mid-episode, and the resumed run must
    report those episodes' whole returns and lengths, as the uninterrupted run does."""
    import copy

    import agents

    cfg = {"discriminator": "rnn", "reward": "dense", "num_envs": 4, "adv_steps": 3, "n_steps": 4}
    a = agents.make("ppo", small_oracle_data, cfg, seed=0)
    first = a.train_iteration()
    assert "episode_reward" not in first  # no episode ended: no figure (a NaN one stopped train.py as diverged)
    state = copy.deepcopy(a.state_dict())
    a.train_iteration()
    b = agents.make("ppo", small_oracle_data, cfg, seed=0)
    b.load_state_dict(state)
    b.train_iteration()
    assert len(a.model.ep_info_buffer) > 0  # 6-token episodes end within the second rollout
    assert [(e["r"], e["l"]) for e in a.model.ep_info_buffer] == [(e["r"], e["l"]) for e in b.model.ep_info_buffer]


def test_the_token_reading_sb3_components_refuse_a_class_conditional_env(small_oracle_data):
    """The class id in the last column would be read as a token (and passed to the discriminator
    as one); SB3's MLP policy on the raw observations still works."""
    from agents.sb3_policy import GeneratorPolicy
    from textgym.sb3 import DiscriminatorCallback

    env = TokenVecEnv(4, data=small_oracle_data, classes=2, discriminator="rnn")
    venv = SB3VecEnv(env)
    with pytest.raises(ValueError, match="ends? with a class id"):
        PPO(GeneratorPolicy, venv, n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match="TokenFeaturesExtractor reads observations as token prefixes"):
        TokenFeaturesExtractor(venv.observation_space)
    with pytest.raises(ValueError, match="DiscriminatorCallback reads observations as token prefixes"):
        DiscriminatorCallback().setup(env)
    PPO("MlpPolicy", venv, n_steps=8, batch_size=8).learn(16)


def test_the_callback_holds_out_nothing_from_a_corpus_too_small_for_a_fifth(tmp_path):
    from textgym.data import Corpus
    from textgym.sb3 import DiscriminatorCallback

    (tmp_path / "c.txt").write_text("a b\nb c\nc a\n")
    data = Corpus(tmp_path / "c.txt")
    env = TokenVecEnv(2, data=data, discriminator="rnn")
    cb = DiscriminatorCallback()
    cb.setup(env)
    assert cb.heldout_real is None and len(cb.real_tokens) == 3  # not an empty held-out set to divide by


def test_the_token_reading_sb3_components_refuse_an_infilling_env(small_oracle_data):
    """The in-filling observation (context with mask ids, then the fill) was read as a prefix
    padded with the mask id: the features extractor silently encoded the wrong positions, the
    generator policy failed with a bare IndexError and the callback at its first retraining."""
    from agents.sb3_policy import GeneratorPolicy
    from textgym.infill import InfillVecEnv
    from textgym.sb3 import DiscriminatorCallback

    env = InfillVecEnv(4, data=small_oracle_data)
    venv = SB3VecEnv(env)
    with pytest.raises(ValueError, match="GeneratorPolicy reads observations as token prefixes, but these are an in-fill"):
        PPO(GeneratorPolicy, venv, n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match="TokenFeaturesExtractor reads observations as token prefixes, but these are an in"):
        PPO("MlpPolicy", venv, n_steps=8, batch_size=8, policy_kwargs=POLICY_KWARGS)
    with pytest.raises(ValueError, match="DiscriminatorCallback trains a discriminator of whole sequences"):
        DiscriminatorCallback().setup(env)
    PPO("MlpPolicy", venv, n_steps=8, batch_size=8).learn(16)  # the raw observations: as before


def test_sb3s_make_vec_env_builds_the_registered_env(small_oracle_data):
    """make_vec_env asks for render_mode="rgb_array" and retries without it only on a TypeError;
    the env's ValueError stopped it. The refusal still names the modes."""
    from stable_baselines3.common.env_util import make_vec_env

    import textgym
    from textgym.env import TokenEnv

    venv = make_vec_env(textgym.ENV_ID, n_envs=2, env_kwargs=dict(data=small_oracle_data, seed=0))
    assert venv.num_envs == 2 and venv.reset().shape == (2, small_oracle_data.max_length)
    with pytest.raises(ValueError, match="render_mode must be None or 'ansi', got 'rgb_array'"):
        TokenEnv(render_mode="rgb_array", data=small_oracle_data)


def test_the_ppo_agents_policy_completes_the_mc_rewards_prefixes_from_the_first_rollout(small_oracle_data):
    """It was the oracle (the env's default on oracle data) until the callback's first retraining,
    and for the whole run of a no-information control; on a corpus the first rollout failed."""
    import agents

    for disc in ("rnn", "constant"):
        agent = agents.make("ppo", small_oracle_data, {"discriminator": disc, "reward": "mc", "n_rollouts": 2,
                                                       "num_envs": 4, "adv_steps": 1}, seed=0)
        assert agent.env.reward_fn.rollout_policy is agent.generator
        agent.train_iteration()
        assert agent.env.reward_fn.rollout_policy is agent.generator


def test_the_callback_makes_the_policy_the_rollout_policy_when_training_starts(tmp_path):
    """On a corpus (no default rollout policy) the first rollout of an MC reward failed with
    "needs a rollout policy" before the callback had set one."""
    from textgym.data import Corpus
    from textgym.sb3 import DiscriminatorCallback, SB3PolicyGenerator

    lines = [f"a{i % 6} b{i // 6}" + " c" * (i % 3) for i in range(60)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    venv = TokenVecEnv(4, data=Corpus(tmp_path / "c.txt"), discriminator="rnn", reward="mc", n_rollouts=2, seed=0)
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=8, batch_size=32, n_epochs=1, seed=0, policy_kwargs=POLICY_KWARGS)
    model.learn(32, callback=DiscriminatorCallback())
    assert isinstance(venv.reward_fn.rollout_policy, SB3PolicyGenerator)


def test_evaluate_policy_reads_the_envs_episode_reports_without_a_monitor_warning(small_oracle_data):
    """SB3VecEnv reports episodes as SB3's Monitor does; evaluate_policy warned that it was not
    Monitor-wrapped and counted the rewards itself."""
    import warnings

    from stable_baselines3.common.evaluation import evaluate_policy

    venv = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle", seed=0))
    model = PPO("MlpPolicy", venv, n_steps=6, batch_size=24, seed=0, policy_kwargs=POLICY_KWARGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rewards, lengths = evaluate_policy(model, venv, n_eval_episodes=8, deterministic=False, return_episode_rewards=True)
    assert len(rewards) == 8 and lengths == [small_oracle_data.max_length] * 8


@pytest.mark.parametrize("algo, sb3_kwargs", [("ppo", {}), ("ppo", {"batch_size": 10, "n_epochs": 3}), ("a2c", {})])
def test_updates_per_iteration_counts_the_policys_optimizer_steps(small_oracle_data, algo, sb3_kwargs):
    """What a study's MLE control matches: PPO makes n_epochs passes of minibatches per iteration,
    and its MLE control used to get one update per iteration (1/50 of PPO's at N = 64, L = 20)."""
    import agents

    cfg = {"discriminator": "oracle", "num_envs": 4, "n_steps": 6, "adv_steps": 1, "sb3_kwargs": sb3_kwargs}
    agent = agents.make(algo, small_oracle_data, cfg, seed=0)
    steps = []
    step = agent.model.policy.optimizer.step
    agent.model.policy.optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
    agent.train_iteration()
    expected = type(agent).updates_per_iteration(agent.config, small_oracle_data.max_length)
    assert len(steps) == expected == {"ppo": 10 if not sb3_kwargs else 9, "a2c": 1}[algo]


def test_a_ppo_cells_mle_control_makes_as_many_updates_as_ppo():
    from textgym.study import StudySpec, expand

    spec = StudySpec.from_dict({"name": "p", "data": "oracle", "seeds": [0], "grid": [
        {"agent": ["ppo"], "discriminator": ["oracle"], "adv_steps": [150], "num_envs": [64]}]})
    assert {c.key for c in expand(spec) if c.role == "mle"} == {"mle +7500 updates"}  # 150 x 10 epochs x 1280 / 256


def test_sb3vecenv_refuses_a_wrapper_it_would_skip(small_oracle_data):
    """SB3VecEnv steps the textgym env itself: a reward wrapper or an early time limit around it
    would silently do nothing, so they are refused; conversions and checks pass."""
    import gymnasium as gym
    from gymnasium.wrappers.vector import ArrayConversion, TransformReward

    venv = TokenVecEnv(2, data=small_oracle_data)
    with pytest.raises(ValueError, match="TransformReward would have no effect"):
        SB3VecEnv(TransformReward(venv, lambda r: r * 0 + 100.0))
    with pytest.raises(ValueError, match="TimeLimit would have no effect"):
        SB3VecEnv(gym.make("textgym/TokenGen-v0", data=small_oracle_data, max_episode_steps=2))
    assert SB3VecEnv(ArrayConversion(venv, env_xp=torch, target_xp=np)).token_env.data is small_oracle_data
    single_env = gym.make("textgym/TokenGen-v0", data=small_oracle_data)
    assert SB3VecEnv(gym.wrappers.NumpyToTorch(single_env)).token_env.data is small_oracle_data  # a conversion too
    single = SB3VecEnv(gym.make("textgym/TokenGen-v0", data=small_oracle_data, max_episode_steps=6))
    single.reset()
    dones = [single.step(np.array([1]))[2][0] for _ in range(6)]
    assert dones == [False] * 5 + [True]


def test_sb3_kwargs_cannot_override_the_agents_fields_and_add_to_the_policys(small_oracle_data):
    """config.json records the fields; an sb3_kwargs key that set the same thing (learning_rate,
    n_steps, the policy's sizes) was used instead, silently."""
    import agents

    base = {"discriminator": "oracle", "num_envs": 4, "n_steps": 6, "adv_steps": 1}
    for bad, field in (({"learning_rate": 0.5}, "the field learning_rate"), ({"n_steps": 3}, "the field n_steps"),
                       ({"policy_kwargs": {"emb_dim": 16}}, "policy_kwargs.emb_dim: the field emb_dim")):
        with pytest.raises(agents.ConfigError, match=field):
            agents.make("ppo", small_oracle_data, {**base, "sb3_kwargs": bad})
    agent = agents.make("ppo", small_oracle_data, {**base, "emb_dim": 8, "sb3_kwargs": {"policy_kwargs": {"value_hidden": 7},
                                                                                      "verbose": 1}})
    assert agent.model.policy.generator.emb_dim == 8 and agent.model.policy.value_head[0].out_features == 7
    assert agent.model.verbose == 1  # no field records it: SB3's own to set


def test_episode_reward_and_kl_beta_describe_the_iterations_rollout(small_oracle_data):
    """episode_reward averages every episode of the rollout (SB3 keeps the last 100 of them by
    default), and kl_beta is the β its rewards were shaped with (the controller moves on after)."""
    import agents

    cfg = {"discriminator": "oracle", "num_envs": 120, "n_steps": 6, "adv_steps": 2, "kl_beta": 0.5, "kl_target": 0.01,
           "kl_horizon": 100}
    agent = agents.make("ppo", small_oracle_data, cfg, seed=0)
    first = agent.train_iteration()
    assert len(agent.model.ep_info_buffer) == 120
    assert first["episode_reward"] == pytest.approx(np.mean([e["r"] for e in agent.model.ep_info_buffer]))
    assert first["kl_beta"] == 0.5 and agent.kl.controller.beta != 0.5  # applied, then adapted
    assert agent.train_iteration()["kl_beta"] == agent.kl.last_beta != 0.5


def test_env_method_reset_resets_only_the_given_envs(small_oracle_data):
    """The envs share one batched env: env_method('reset', indices=[0]) used to reset all of them
    and keep their episode returns and lengths counting."""
    env = SB3VecEnv(TokenVecEnv(3, data=small_oracle_data, seed=0))
    env.reset()
    for _ in range(2):
        env.step(np.array([1, 2, 3]))
    (obs, _), = env.env_method("reset", indices=[0])
    assert (obs == 50).all() and env.token_env.lengths.tolist() == [0, 2, 2]
    assert env._steps.tolist() == [0, 2, 2]
    for _ in range(4):
        _, _, dones, infos = env.step(np.array([1, 2, 3]))
    assert dones.tolist() == [False, True, True] and [i["episode"]["l"] for i in infos[1:]] == [6, 6]


def test_each_discriminator_retraining_gets_the_sequences_that_finished_since_the_last_one(small_oracle_data):
    """S4: the callback's fakes are those of the rollouts since its last retraining, each used once,
    not every sequence finished since training began (6-token episodes, 6-step rollouts: each of the
    4 envs finishes one per rollout)."""
    import discriminators
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from textgym import TokenVecEnv
    from textgym.sb3 import DiscriminatorCallback, SB3VecEnv, TokenFeaturesExtractor

    class Recording:
        def __init__(self, discriminator) -> None:
            self.discriminator, self.fakes = discriminator, []

        def step(self, real, real_len, fake, fake_len, k=1):
            self.fakes.append(len(fake))
            return {}

    class Finished(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.counts, self.n = [], 0

        def _on_step(self) -> bool:
            self.n += int(np.sum(self.locals["dones"]))
            return True

        def _on_rollout_end(self) -> None:
            self.counts.append(self.n)
            self.n = 0

    disc = discriminators.make("rnn", vocab_size=50, max_length=6, hidden=8, emb_dim=8)
    venv = TokenVecEnv(4, data=small_oracle_data, discriminator=disc, seed=0)
    trainer, finished = Recording(disc), Finished()
    model = PPO("MlpPolicy", SB3VecEnv(venv), n_steps=6, batch_size=24, n_epochs=1, seed=0,
                policy_kwargs=dict(features_extractor_class=TokenFeaturesExtractor))
    model.learn(4 * 6 * 3, callback=CallbackList([DiscriminatorCallback(trainer=trainer, heldout=0), finished]))
    assert finished.counts == [4, 4, 4]
    assert trainer.fakes == finished.counts


def test_the_callbacks_heldout_argument_caps_the_test_sets_reals(small_oracle_data):
    """S6: heldout=n scores n held-out reals (the data's test set has 256 here); the suite's callbacks
    used heldout=0, the default 1000 on a test set of 256, or a corpus without a test set."""
    from textgym import TokenVecEnv
    from textgym.sb3 import DiscriminatorCallback

    env = TokenVecEnv(2, data=small_oracle_data, discriminator="rnn")
    cb = DiscriminatorCallback(heldout=7)
    cb.setup(env)
    assert torch.equal(cb.heldout_real[0], small_oracle_data.test[:7]) and len(cb.heldout_real[1]) == 7
    assert len(cb.real_tokens) == len(small_oracle_data.train)  # a test set: no training reals held out
