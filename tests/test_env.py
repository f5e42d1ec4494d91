"""TokenVecEnv / TokenEnv: gymnasium and SB3 checkers, vector == N singles, autoreset, prefixes, bad input."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from textgym import OracleScorer, TokenEnv, TokenVecEnv
from textgym.data import Corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("c") / "train.txt"
    p.write_text("a b c\nb c\nc a b a\nd\n")
    return Corpus(p)


def test_registered_entry_points(small_oracle_data):
    env = gym.make("textgym/TokenGen-v0", data=small_oracle_data)
    assert isinstance(env.unwrapped, TokenEnv)
    venv = gym.make_vec("textgym/TokenGen-v0", num_envs=4, data=small_oracle_data, device="cpu", reward="mc")
    assert isinstance(venv, TokenVecEnv) and venv.num_envs == 4 and venv.reward_fn.mode == "mc"
    assert venv.single_observation_space == gym.spaces.Box(0, 50, (6,), np.int64)
    assert venv.single_action_space == gym.spaces.Discrete(50)


def test_default_make_uses_the_published_oracle(oracle_data):
    env = gym.make("textgym/TokenGen-v0")
    assert env.observation_space.shape == (20,) and env.action_space.n == 5000
    obs, _ = env.reset(seed=0)
    assert (obs == 5000).all()  # padding id is vocab_size, outside the 5000 valid tokens


@pytest.mark.parametrize("reward", ["terminal", "dense", "mc"])
def test_gymnasium_and_sb3_checkers(small_oracle_data, reward, device):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    mc = {"n_rollouts": 2} if reward == "mc" else {}
    env = TokenEnv(data=small_oracle_data, reward=reward, seed=0, device=device, **mc)
    check_env(env, skip_render_check=True)
    sb3_check_env(env)


def test_checkers_on_a_corpus(corpus, toy_scorer):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = TokenEnv(data=corpus, discriminator=toy_scorer(corpus.vocab_size))
    check_env(env, skip_render_check=True)
    sb3_check_env(env)


@pytest.mark.parametrize("reward", ["terminal", "dense"])
def test_vector_env_matches_single_envs(corpus, toy_scorer, reward, device):
    """The batched env on ``device`` against N single envs on the CPU."""
    N, steps = 5, 30
    scorer = toy_scorer(corpus.vocab_size)
    venv = TokenVecEnv(N, data=corpus, reward=reward, discriminator=scorer, seed=0, device=device)
    singles = [TokenEnv(data=corpus, reward=reward, discriminator=scorer, seed=i) for i in range(N)]
    rng = np.random.default_rng(0)
    obs, _ = venv.reset(seed=0)
    assert obs.device.type == device.type
    single_obs = [e.reset(seed=i)[0] for i, e in enumerate(singles)]
    np.testing.assert_array_equal(obs.cpu().numpy(), np.stack(single_obs))
    finished = np.zeros(N, bool)
    ended = 0
    for _ in range(steps):
        actions = rng.integers(0, corpus.vocab_size, N)
        obs, rew, term, trunc, _ = venv.step(torch.as_tensor(actions, device=device))
        assert rew.device.type == term.device.type == device.type
        obs, rew, term, trunc = obs.cpu(), rew.cpu(), term.cpu(), trunc.cpu()
        for i, e in enumerate(singles):
            if finished[i]:  # NEXT_STEP autoreset: this step resets env i and ignores its action
                o, r, t = e.reset()[0], 0.0, False
            else:
                o, r, t, _, _ = e.step(actions[i])
            np.testing.assert_array_equal(obs[i].numpy(), o)
            assert float(rew[i]) == pytest.approx(r, abs=1e-6)
            assert bool(term[i]) == t and not bool(trunc[i])
        finished = term.numpy()
        ended += finished.sum()
    assert ended > 5  # episodes did end (at <eos> or max_length) and restart


def test_episode_ends_at_max_length_as_terminated(small_oracle_data, device):
    venv = TokenVecEnv(3, data=small_oracle_data, device=device)
    venv.reset(seed=0)
    for t in range(6):
        obs, r, term, trunc, _ = venv.step(torch.tensor([1, 2, 3], device=device))
        assert obs.device.type == r.device.type == term.device.type == device.type
        assert bool(term.all()) == (t == 5) and not trunc.any()
        assert (r != 0).all() == (t == 5)  # terminal reward: 0 before the end
    assert obs[0].tolist() == [1] * 6
    np.testing.assert_allclose(r.cpu(), OracleScorer(small_oracle_data.oracle).score(obs.cpu()), rtol=1e-5)


def test_episode_ends_at_eos(corpus, toy_scorer, device):
    venv = TokenVecEnv(2, data=corpus, discriminator=toy_scorer(corpus.vocab_size), device=device)
    venv.reset()
    venv.step(torch.tensor([2, 3], device=device))
    _, r, term, _, _ = venv.step(torch.tensor([0, 4], device=device))  # env 0 says <eos>
    assert term.tolist() == [True, False]
    # env 0's reward: the toy scorer's logit of [2, <eos>] (mean id 1) as a probability
    logit = torch.tensor(1 / corpus.vocab_size * 4 - 2)
    torch.testing.assert_close(r.cpu(), torch.stack([torch.sigmoid(logit), torch.tensor(0.0)]))


def test_same_step_autoreset_reports_final_obs(small_oracle_data, device):
    venv = TokenVecEnv(2, data=small_oracle_data, autoreset_mode="SameStep", device=device)
    venv.reset(options={"prefix": [[7, 7, 7, 7, 7], [1]]})
    obs, r, term, _, info = venv.step(torch.tensor([9, 9], device=device))
    assert info["final_obs"].device.type == device.type
    assert term.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False]
    assert info["final_obs"][0].tolist() == [7, 7, 7, 7, 7, 9]
    assert info["final_info"] == {} and info["_final_info"].tolist() == [True, False]  # as gymnasium's vector envs
    assert obs[0].tolist() == [50] * 6 and obs[1].tolist()[:2] == [1, 9]


def test_disabled_autoreset_needs_reset_mask(small_oracle_data, device):
    venv = TokenVecEnv(2, data=small_oracle_data, autoreset_mode=AutoresetMode.DISABLED, device=device)
    venv.reset(options={"prefix": [[1, 1, 1, 1, 1], [2]]})
    venv.step(torch.tensor([3, 3], device=device))
    with pytest.raises(RuntimeError, match="reset_mask"):
        venv.step(torch.tensor([3, 3], device=device))
    obs, _ = venv.reset(options={"reset_mask": np.array([True, False])})
    assert obs[0].tolist() == [50] * 6 and obs[1].tolist()[:2] == [2, 3]
    venv.step(torch.tensor([4, 4], device=device))


def test_reset_with_prefix(small_oracle_data, device):
    venv = TokenVecEnv(3, data=small_oracle_data, device=device)
    prefix = torch.tensor([[1, 2, 3], [4, 5, 0], [6, 0, 0]], device=device)
    obs, _ = venv.reset(options={"prefix": prefix, "prefix_lengths": [3, 2, 1]})
    assert obs.tolist() == [[1, 2, 3, 50, 50, 50], [4, 5, 50, 50, 50, 50], [6, 50, 50, 50, 50, 50]]
    nine = torch.tensor([9, 9, 9], device=device)
    _, _, term, _, _ = venv.step(nine)
    steps = 1
    while not term[0]:
        _, _, term, _, _ = venv.step(nine)
        steps += 1
    assert steps == 3  # 6 - 3 tokens generated after a prefix of 3
    single = TokenEnv(data=small_oracle_data, device=device)
    obs, _ = single.reset(options={"prefix": np.array([5, 6])})
    assert obs.tolist()[:3] == [5, 6, 50]
    # the single env takes a padded prefix with its length, and integral floats, as the vector env does
    obs, _ = single.reset(options={"prefix": np.array([5, 6, 7, 7]), "prefix_lengths": np.array([2])})
    assert obs.tolist()[:3] == [5, 6, 50]
    obs, _ = single.reset(options={"prefix": torch.tensor([5.0, 6.0, 7.0], device=device)})
    assert obs.tolist()[:4] == [5, 6, 7, 50]
    assert single.reset(options={"prefix": []})[0].tolist()[0] == 50


def test_bad_prefixes(small_oracle_data, corpus, toy_scorer):
    venv = TokenVecEnv(2, data=small_oracle_data)
    with pytest.raises(ValueError, match="shorter than max_length"):
        venv.reset(options={"prefix": [[1] * 6, [1]]})
    with pytest.raises(ValueError, match="out of range"):
        venv.reset(options={"prefix": [[1, 50], [1]]})
    with pytest.raises(ValueError, match="one per env"):
        venv.reset(options={"prefix": [[1]]})
    with pytest.raises(ValueError, match="unknown reset options"):
        venv.reset(options={"prefx": [[1], [2]]})
    with pytest.raises(ValueError, match="reset_mask'\\] must have shape \\(2,\\), got \\(0,\\)"):
        venv.reset(options={"reset_mask": []})
    with pytest.raises(ValueError, match="must be booleans"):
        venv.reset(options={"reset_mask": [2, 0]})
    with pytest.raises(ValueError, match="without options\\['prefix'\\]"):
        venv.reset(options={"prefix_lengths": [1, 1]})
    rows = [[1, 2], [3]]  # a ragged list of 1-D tensors reads as the same list of lists
    as_lists, _ = venv.reset(options={"prefix": rows})
    as_tensors, _ = venv.reset(options={"prefix": [torch.tensor(r) for r in rows]})
    np.testing.assert_array_equal(as_tensors, as_lists)
    with pytest.raises(ValueError, match=r"options\['prefix'\]\[0\] must hold integer token ids"):
        venv.reset(options={"prefix": [torch.tensor([1.5]), [2]]})
    cvenv = TokenVecEnv(1, data=corpus, discriminator=toy_scorer(corpus.vocab_size))
    with pytest.raises(ValueError, match="<eos>"):
        cvenv.reset(options={"prefix": [[2, 0]]})


def test_bad_actions(small_oracle_data):
    venv = TokenVecEnv(2, data=small_oracle_data)
    with pytest.raises(RuntimeError, match="before reset"):
        venv.step(torch.tensor([1, 2]))
    venv.reset()
    with pytest.raises(ValueError, match="token id 50 is out of range for a vocabulary of 50 tokens"):
        venv.step(torch.tensor([1, 50]))
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        venv.step(np.array([-1, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        venv.step(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="integer"):
        venv.step(np.array([1.5, 2.0]))
    with pytest.raises(ValueError, match="a value exceeds the int64 range"):  # was "not numbers (None?)"
        venv.step([1, 2**64])
    venv.step(np.array([1, 2], dtype=object))  # Python ints in an object array are integer actions
    env = TokenEnv(data=small_oracle_data)
    env.reset()
    with pytest.raises(ValueError, match="one token id"):
        env.step(np.array([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        env.step(5003)


def test_scorer_vocabulary_mismatch_and_nonfinite(small_oracle_data, toy_scorer):
    with pytest.raises(ValueError, match="vocabulary of 7 tokens but the env has 50"):
        TokenVecEnv(2, data=small_oracle_data, discriminator=toy_scorer(7))

    class NaNScorer(toy_scorer):
        def score(self, tokens, lengths=None):
            return torch.full((tokens.shape[0],), float("nan"))

    venv = TokenVecEnv(1, data=small_oracle_data, discriminator=NaNScorer(50))
    venv.reset(options={"prefix": [[1] * 5]})
    with pytest.raises(ValueError, match="non-finite"):
        venv.step(torch.tensor([1]))


def test_oracle_scorer_needs_oracle_data(corpus):
    with pytest.raises(ValueError, match="needs data='oracle'"):
        TokenVecEnv(1, data=corpus, discriminator="oracle")


def test_action_masks_forbid_empty_sentences(corpus, toy_scorer):
    venv = TokenVecEnv(2, data=corpus, discriminator=toy_scorer(corpus.vocab_size))
    venv.reset()
    m = venv.action_masks()
    assert m.shape == (2, corpus.vocab_size) and not m[:, 0].any() and m[:, 1:].all()
    venv.step(torch.tensor([2, 3]))
    assert venv.action_masks().all()


def test_numpy_users_can_wrap_with_array_conversion(small_oracle_data):
    from gymnasium.wrappers.vector import ArrayConversion

    env = ArrayConversion(TokenVecEnv(3, data=small_oracle_data), env_xp=torch, target_xp=np)
    obs, _ = env.reset(seed=0)
    obs, r, term, trunc, _ = env.step(np.array([1, 2, 3]))
    assert isinstance(obs, np.ndarray) and obs.dtype == np.int64 and isinstance(r, np.ndarray)


def test_render_ansi(corpus, toy_scorer):
    env = TokenEnv(data=corpus, discriminator=toy_scorer(corpus.vocab_size), render_mode="ansi")
    env.reset()
    env.step(corpus.vocab.stoi["a"])
    env.step(corpus.vocab.stoi["b"])
    assert env.render() == "a b"


def _record_moves(monkeypatch, target: torch.nn.Module) -> list:
    """Every ``nn.Module._apply`` (what ``.to``, ``.cuda``, ``.cpu``, ``.float`` run) on ``target``."""
    calls: list = []
    original = torch.nn.Module._apply

    def spy(self, fn, *args, **kwargs):
        if self is target:
            calls.append(fn)
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "_apply", spy)
    return calls


@pytest.mark.parametrize("reward", ["terminal", "mc", "dense"])
def test_envs_never_move_the_shared_oracle(small_oracle_data, monkeypatch, reward, device):
    # The oracle of a (cached, shared) OracleData serves every env in the process: an env on
    # another device must get its own copy, never move the shared one under the others' feet.
    shared = small_oracle_data.oracle
    moves = _record_moves(monkeypatch, shared)
    envs = []
    for _ in range(2):
        venv = TokenVecEnv(2, data=small_oracle_data, reward=reward, device=device, seed=0)
        venv.reset()
        venv.step(torch.tensor([1, 2], device=device))
        envs.append(venv)
    assert moves == [] and small_oracle_data.oracle is shared
    assert all(p.device.type == "cpu" for p in shared.parameters())
    own = envs[0].oracle
    assert all(p.device.type == device.type for p in own.parameters())
    # on the oracle's own device no copy is needed; on another, one copy per device, reused
    assert (own is shared) == (device.type == "cpu") and envs[1].oracle is own
    assert venv.scorer.oracle is own
    if reward == "mc":
        assert venv.reward_fn.rollout_policy is own


@pytest.mark.parametrize("reward", ["terminal", "dense"])
def test_reset_with_a_seed_repeats_the_random_controls_rewards(small_oracle_data, reward):
    env = TokenVecEnv(4, data=small_oracle_data, reward=reward, discriminator="random")
    actions = torch.randint(0, 50, (small_oracle_data.max_length, 4), generator=torch.Generator().manual_seed(1))

    def episode(seed):
        env.reset(seed=seed)
        return torch.stack([env.step(a)[1] for a in actions])

    first = episode(7)
    assert first.abs().sum() > 0  # the control's N(0, 1) logits, not zeros
    assert torch.equal(episode(7), first)
    assert not torch.equal(episode(8), first)


def test_a_single_env_stepped_after_its_episode_ended_says_to_reset(small_oracle_data):
    env = TokenEnv(data=small_oracle_data)
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(3)
    with pytest.raises(RuntimeError, match=r"episode has ended; call reset\(\)"):
        env.step(3)
    env.reset()
    env.step(3)


def test_a_numpy_integer_seed_resets_the_vector_and_single_envs(small_oracle_data):
    """Accepted by the constructor, then refused by gymnasium's reset ("Seed must be a python integer")."""
    from textgym.env import TokenEnv

    venv = TokenVecEnv(2, data=small_oracle_data, seed=np.int64(0))
    a, _ = venv.reset(seed=np.int64(3))
    b, _ = TokenVecEnv(2, data=small_oracle_data).reset(seed=3)
    assert torch.equal(a, b)
    TokenEnv(data=small_oracle_data).reset(seed=np.int64(3))


def test_arguments_that_would_be_ignored_are_refused(small_oracle_data):
    """A Reward object brings its own scorer, transform and rollouts; the MC options apply to
    reward='mc' only. Either way the env used to drop them without a word."""
    from textgym.rewards import MCReward, TerminalReward

    reward = TerminalReward(OracleScorer(small_oracle_data.oracle))
    for extra in ({"discriminator": "rnn"}, {"transform": "log"}, {"n_rollouts": 4}, {"rollout_policy": object()}):
        with pytest.raises(ValueError, match="Reward object given as reward= brings its own"):
            TokenVecEnv(2, data=small_oracle_data, reward=reward, **extra)
    for extra in ({"n_rollouts": -5}, {"rollout_policy": object()}):
        with pytest.raises(ValueError, match="apply to reward='mc' only"):
            TokenVecEnv(2, data=small_oracle_data, reward="terminal", **extra)
    with pytest.raises(ValueError, match="n_rollouts must be an integer >= 1, got 0"):
        TokenVecEnv(2, data=small_oracle_data, reward="mc", n_rollouts=0)
    with pytest.raises(ValueError, match="n_rollouts must be an integer >= 1, got 2.5"):  # was a TypeError at step
        TokenVecEnv(2, data=small_oracle_data, reward="mc", n_rollouts=2.5)
    with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1 \\(or None\\), got 1.5"):
        MCReward(OracleScorer(small_oracle_data.oracle), chunk_rows=1.5)
    assert TokenVecEnv(2, data=small_oracle_data, reward="mc").reward_fn.n_rollouts == 16  # SeqGAN's
    assert TokenVecEnv(2, data=small_oracle_data, reward=reward).reward_fn is reward


class _LikeCuda(torch.Tensor):
    """A CPU tensor that numpy cannot read, as it cannot read a CUDA tensor."""

    def __array__(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


def test_the_single_envs_step_on_a_tensor_action_on_the_envs_device(small_oracle_data, device):
    """TokenEnv.step and InfillEnv's reset and step read tensors with np.asarray, which a CUDA
    tensor refuses (the vector envs take it)."""
    from textgym.infill import InfillEnv

    env = TokenEnv(data=small_oracle_data, device=device, seed=0)
    env.reset()
    for action in (torch.tensor(3, device=device), torch.tensor([4]).as_subclass(_LikeCuda)):
        obs, *_ = env.step(action)
    assert obs.tolist()[:2] == [3, 4]
    with pytest.raises(ValueError, match=r"one token id, got an array of shape \(2,\)"):
        env.step(torch.tensor([1, 2]))
    infill = InfillEnv(data=small_oracle_data, device=device, seed=0)
    tokens = torch.arange(6)  # L = 6: the observation is the masked text (blanks as 51), then the text so far
    obs, info = infill.reset(options={"tokens": tokens.as_subclass(_LikeCuda), "blanks": (tokens >= 2).as_subclass(_LikeCuda),
                                      "lengths": torch.tensor(6).as_subclass(_LikeCuda)})
    assert obs.tolist()[:6] == [0, 1, 51, 51, 51, 51] and int(info["cursor"]) == 2
    obs, *_ = infill.step(torch.tensor(7).as_subclass(_LikeCuda))
    assert obs.tolist()[6:] == [0, 1, 7, 51, 51, 51]


def test_autoreset_mode_is_refused_by_the_single_envs_with_a_message(small_oracle_data):
    """gym.make("textgym/TokenGen-v0", autoreset_mode=...) raised "got multiple values for keyword argument"."""
    import gymnasium as gym

    for env_id in ("textgym/TokenGen-v0", "textgym/Infill-v0"):
        with pytest.raises(ValueError, match=r"autoreset_mode applies to the vector envs \(gym.make_vec\)"):
            gym.make(env_id, data=small_oracle_data, autoreset_mode="same_step")
        assert gym.make_vec(env_id, num_envs=2, data=small_oracle_data, autoreset_mode="same_step").num_envs == 2


@pytest.mark.parametrize("reward", ["terminal", "dense", "mc"])
def test_the_step_that_autoresets_an_env_rewards_it_nothing(small_oracle_data, reward):
    """E6: with NEXT_STEP autoreset the step after an episode's end only starts the next one (its
    action is ignored): reward 0 for every reward mode. The suite's check of this (the reference
    model of test_hardening) used a terminal reward, so an MC reward that rolled out the resetting
    envs' empty prefix (a nonzero Q, and n rollouts of compute) passed."""
    from textgym import TokenVecEnv

    mc = {"n_rollouts": 2} if reward == "mc" else {}
    env = TokenVecEnv(2, data=small_oracle_data, reward=reward, seed=0, **mc)
    env.reset(options={"prefix": [[1, 2, 3, 4, 5], [1]]})
    _, r, term, _, _ = env.step(torch.tensor([6, 6]))
    assert term.tolist() == [True, False] and float(r[0]) != 0.0
    _, r, term, _, _ = env.step(torch.tensor([7, 7]))  # env 0 resets; env 1 steps on
    assert float(r[0]) == 0.0 and not bool(term[0])
    assert (float(r[1]) != 0.0) == (reward != "terminal")
