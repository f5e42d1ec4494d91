"""textgym's generator as an SB3 policy, the KL-shaped reward, the discriminator callback with
defaults, and SB3VecEnv leaving the env it wraps untouched."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from test_agents import gen_state_equal, same_leaves

import agents
from agents.generator import Generator
from agents.policy_head import HeadWorkspace, head_log_prob_entropy
from agents.sb3_policy import GeneratorPolicy, KLRewardCallback, PrefixEncoder, generator_policy_kwargs, grouped_hidden
from textgym import TokenVecEnv
from textgym.rewards import KLController, kl_shaped
from textgym.sb3 import DiscriminatorCallback, SB3VecEnv

V, L = 50, 6


def trained_generator(data, seed=0) -> Generator:
    """A generator with a few MLE steps (not the init), so that its probabilities are distinct."""
    g = Generator(V, L, seed=seed)
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    for _ in range(20):
        loss = -g.log_probs(data.train[:128]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g


def prefixes_of(seqs: torch.Tensor):
    """Every (prefix, next token) pair of complete sequences (N, L): obs (N·L, L) padded, actions (N·L,)."""
    obs, actions = [], []
    for row in seqs:
        for t in range(L):
            p = torch.full((L,), V)
            p[:t] = row[:t]
            obs.append(p)
            actions.append(row[t])
    return torch.stack(obs), torch.stack(actions)


def make_policy(data, gen):
    env = SB3VecEnv(TokenVecEnv(4, data=data, discriminator="oracle", seed=0))
    model = PPO(GeneratorPolicy, env, n_steps=L, batch_size=24, seed=0,
                policy_kwargs=generator_policy_kwargs(gen.state_dict()))
    return model


def test_a_policy_from_scratch_takes_its_weights_from_the_runs_seed(small_oracle_data):
    def weights(seed):
        env = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle", seed=0))
        return PPO(GeneratorPolicy, env, n_steps=L, batch_size=24, seed=seed).policy.generator.state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lstm.weight_ih_l0"], c["lstm.weight_ih_l0"])


def test_policy_log_probs_equal_the_generators_on_every_path(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    policy = make_policy(small_oracle_data, gen).policy
    seqs = small_oracle_data.test[:8]
    obs, actions = prefixes_of(seqs)
    expected = gen.log_probs(seqs).detach().reshape(-1)
    perm = torch.randperm(len(obs), generator=torch.Generator().manual_seed(0))  # a shuffled minibatch, as PPO's
    _, lp, ent = policy.evaluate_actions(obs[perm].float(), actions[perm])  # grouped teacher forcing, with gradient
    torch.testing.assert_close(lp.detach(), expected[perm], rtol=1e-5, atol=1e-5)
    assert lp.requires_grad and torch.all(ent > 0)
    with torch.no_grad():  # acting: the cached, step-by-step path, one prefix length per call
        for t in range(L):
            rows = torch.arange(t, len(obs), L)
            sampled, _, lp_t = policy(obs[rows].float())
            # the log-probability returned with a sampled token is the generator's of that token:
            # the sequence with token t replaced, teacher-forced (position t sees only x_<t)
            swapped = seqs.clone()
            swapped[:, t] = sampled
            torch.testing.assert_close(lp_t, gen.log_probs(swapped)[:, t], rtol=1e-5, atol=1e-5)
            dist = policy.get_distribution(obs[rows].float())
            torch.testing.assert_close(dist.log_prob(actions[rows]), expected[rows], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("entropy_grad", [True, False])
def test_the_fused_head_gives_autograds_values_and_gradients(entropy_grad, device):
    torch.manual_seed(0)
    out = torch.nn.Linear(5, 11).double().to(device)
    h = torch.randn(7, 5, dtype=torch.float64, device=device, requires_grad=True)
    actions = torch.randint(11, (7,), device=device)
    g_a = torch.randn(7, dtype=torch.float64, device=device)
    g_h = torch.randn(7, dtype=torch.float64, device=device) * entropy_grad
    params = [h, out.weight, out.bias]
    lp, ent = head_log_prob_entropy(h, out, actions)
    fused = torch.autograd.grad((lp * g_a).sum() + (ent * g_h).sum(), params)
    log_p = torch.log_softmax(out(h), -1)  # the straightforward graph
    ref_lp, ref_ent = log_p.gather(1, actions[:, None]).squeeze(1), -(log_p.exp() * log_p).sum(-1)
    ref = torch.autograd.grad((ref_lp * g_a).sum() + (ref_ent * g_h).sum(), params)
    torch.testing.assert_close(lp, ref_lp)
    torch.testing.assert_close(ent, ref_ent)
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b)


def test_the_fused_head_refuses_a_second_backward():
    out = torch.nn.Linear(4, 9)
    lp, _ = head_log_prob_entropy(torch.randn(3, 4), out, torch.tensor([0, 1, 2]))
    lp.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated once"):
        lp.sum().backward()



def test_a_shared_head_workspace_keeps_pending_graphs_apart(device):
    """Two forwards through one workspace before either backward (the second must not write
    into the buffer the first saved), then a third after both: every gradient is autograd's."""
    torch.manual_seed(0)
    out = torch.nn.Linear(5, 11).double().to(device)
    workspace = HeadWorkspace()
    hs = [torch.randn(r, 5, dtype=torch.float64, device=device, requires_grad=True) for r in (7, 7, 4)]
    actions = [torch.randint(11, (len(h),), device=device) for h in hs]

    def reference(h, a):
        return torch.autograd.grad(torch.log_softmax(out(h), -1).gather(1, a[:, None]).sum(), h)[0]

    first = head_log_prob_entropy(hs[0], out, actions[0], workspace)[0]
    second = head_log_prob_entropy(hs[1], out, actions[1], workspace)[0]
    for lp, h, a in ((second, hs[1], actions[1]), (first, hs[0], actions[0])):
        torch.testing.assert_close(torch.autograd.grad(lp.sum(), h)[0], reference(h, a))
    third = head_log_prob_entropy(hs[2], out, actions[2], workspace)[0]  # the buffer is free again
    torch.testing.assert_close(torch.autograd.grad(third.sum(), hs[2])[0], reference(hs[2], actions[2]))


def test_grouped_and_cached_states_equal_a_fresh_encoding(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    seqs = small_oracle_data.test[:5]
    obs, _ = prefixes_of(seqs)
    obs = torch.cat([obs, obs[:7]])  # duplicates share a representative too
    lengths = (obs != V).sum(1)
    fresh = torch.stack([gen._hidden(o[None])[0, n] for o, n in zip(obs, lengths, strict=True)])
    torch.testing.assert_close(grouped_hidden(gen, obs, lengths).detach(), fresh.detach(), rtol=1e-5, atol=1e-6)
    enc = PrefixEncoder(gen)
    for t in range(L):  # an episode step by step (incremental), then a jump (fresh encoding)
        rows = torch.arange(t, 5 * L, L)
        h, _ = enc.encode(obs[rows], lengths[rows])
        torch.testing.assert_close(h, fresh[rows].detach(), rtol=1e-5, atol=1e-6)
    h, _ = enc.encode(obs[:5], lengths[:5])
    torch.testing.assert_close(h, fresh[:5].detach(), rtol=1e-5, atol=1e-6)


def test_a_policy_loaded_from_an_mle_run_samples_that_generators_distribution(tmp_path, small_oracle_data):
    gen = trained_generator(small_oracle_data)
    state = {"agent": "mle", "iteration": 1, "generator": gen.state_dict()}
    policy = make_policy(small_oracle_data, Generator(V, L)).policy  # a fresh policy, then loaded
    kwargs = generator_policy_kwargs(state)
    assert kwargs["emb_dim"] == 32 and kwargs["hidden_dim"] == 32
    policy.generator.load_state_dict(kwargs["generator_state"])
    empty = torch.full((20000, L), float(V))
    with torch.no_grad():
        dist = policy.get_distribution(empty[:1])
        probs = dist.log_p.exp()[0]
        torch.testing.assert_close(probs, torch.softmax(gen(torch.zeros(1, L, dtype=torch.long))[0][0, 0], -1),
                                   rtol=1e-5, atol=1e-7)
        torch.manual_seed(0)
        first = policy.get_distribution(empty).sample()
    freq = torch.bincount(first, minlength=V).float() / len(first)
    assert (freq - probs).abs().max() < 4 * math.sqrt(probs.max() / len(first)) + 1e-3


def test_kl_shaped_reward_is_the_hand_computation_and_zero_for_the_reference():
    r = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    lp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    ref = torch.tensor([[-1.5, -2.0], [-0.1, -1.0]])
    torch.testing.assert_close(kl_shaped(r, lp, ref, 0.2), torch.tensor([[0.9, 0.0], [0.58, 2.4]]))
    torch.testing.assert_close(kl_shaped(r, lp, lp, 0.7), r)
    with pytest.raises(ValueError, match="one shape"):
        kl_shaped(r, lp[:1], ref, 0.1)


def test_adaptive_controller_moves_beta_toward_its_target():
    c = KLController(0.1, target=0.05, horizon=1000)
    betas = [c.update(0.2, 100) for _ in range(5)]  # KL above target: β grows by at most 2% per 100 tokens
    assert betas[0] == pytest.approx(0.1 * 1.02) and all(b2 > b1 for b1, b2 in zip(betas, betas[1:], strict=False))
    c2 = KLController(0.1, target=0.05, horizon=1000)
    assert c2.update(0.01, 100) < 0.1 and c2.update(0.05, 100) == pytest.approx(c2.beta)
    fixed = KLController(0.3)
    assert fixed.update(10.0, 10**6) == 0.3
    with pytest.raises(ValueError, match="beta must be >= 0"):
        KLController(-1.0)
    # a target with β = 0: the multiplicative rule never moves β, so no penalty ever applied (silently)
    with pytest.raises(ValueError, match="needs a starting β > 0"):
        KLController(0.0, target=0.05)
    # a NaN estimate would pass through the clip and leave β NaN for every later update
    for kl in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="KL estimate must be finite"):
            c.update(kl, 100)
    assert math.isfinite(c.beta)


def test_adaptive_controller_steps_are_the_proportional_rule_by_hand():
    """e = clip(kl / target - 1, -0.2, 0.2), β ← β (1 + e n / horizon) (Ziegler et al. 2019)."""
    c = KLController(0.1, target=0.05, horizon=1000)
    assert c.update(0.055, 100) == pytest.approx(0.1 * 1.01, rel=1e-12)  # e = +0.1: β · (1 + 0.1 · 0.1)
    assert c.update(0.045, 500) == pytest.approx(0.101 * 0.95, rel=1e-12)  # e = -0.1: β · (1 - 0.1 · 0.5)
    assert c.update(0.5, 100) == pytest.approx(0.09595 * 1.02, rel=1e-12)  # e = 9 clipped to 0.2
    assert c.update(0.0, 250) == pytest.approx(0.0978690 * 0.95, rel=1e-12)  # e = -1 clipped to -0.2
    assert c.beta == pytest.approx(0.09297555, rel=1e-12)
    big = KLController(2.0, target=0.1, horizon=100)
    assert big.update(0.11, 1050) == pytest.approx(2.0 * 1.1**10 * 1.05, rel=1e-12)  # e = 0.1, once per horizon
    # a whole rollout of KL 0 at the start (n = 13 horizons): β shrinks but stays positive
    start = KLController(0.1, target=0.05, horizon=10_000)
    beta = start.update(0.0, 131_072)
    assert beta == pytest.approx(0.1 * 0.8**13 * (1 - 0.2 * 0.1072), rel=1e-12) and beta > 0


class Recorder(BaseCallback):
    """Copies of each step's rewards, actions, log-probs and observations as SB3 holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list = []

    def _on_step(self) -> bool:
        loc = self.locals
        self.steps.append((loc["rewards"].copy(), loc["actions"].copy(), loc["log_probs"].clone(), loc["obs_tensor"].clone()))
        return True


def test_kl_callback_shapes_each_reward_by_the_hand_computation(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    model = make_policy(small_oracle_data, gen)
    reference = copy.deepcopy(gen)
    kl = KLRewardCallback(model.policy.generator, KLController(0.5))
    raw, shaped = Recorder(), Recorder()
    model.learn(4 * L, callback=CallbackList([raw, kl, shaped]))  # collected before any update: π = π_ref
    assert kl.last_kl == pytest.approx(0.0, abs=1e-6)
    for (r0, *_), (r1, *_) in zip(raw.steps, shaped.steps, strict=True):
        np.testing.assert_allclose(r1, r0, atol=1e-6)
    raw.steps, shaped.steps = [], []
    model.learn(4 * L * 4, callback=CallbackList([raw, kl, shaped]), reset_num_timesteps=False)
    for (r0, actions, lp, obs), (r1, *_) in zip(raw.steps, shaped.steps, strict=True):
        tokens = obs.round().long()
        lengths = (tokens != V).sum(1)
        ref_lp = torch.log_softmax(reference(tokens)[0], -1)[torch.arange(4), lengths, torch.as_tensor(actions).long()]
        np.testing.assert_allclose(r1, r0 - 0.5 * (lp - ref_lp).detach().numpy(), rtol=1e-5, atol=1e-5)
    assert any(not np.allclose(a[0], b[0]) for a, b in zip(raw.steps, shaped.steps, strict=True))


def test_ppo_and_a2c_train_the_generator_policy(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    env = SB3VecEnv(TokenVecEnv(16, data=small_oracle_data, discriminator="oracle", seed=0))
    for algo in (PPO, A2C):
        model = algo(GeneratorPolicy, env, n_steps=L, seed=0, policy_kwargs=generator_policy_kwargs(gen.state_dict()))
        before = copy.deepcopy(model.policy.generator.state_dict())
        model.learn(16 * L * 2)
        assert any(not torch.equal(before[k], v) for k, v in model.policy.generator.state_dict().items())


def test_discriminator_callback_with_defaults_trains_the_envs_discriminator(small_oracle_data, tmp_path):
    from stable_baselines3.common.logger import configure

    import discriminators

    torch.manual_seed(0)
    disc = discriminators.make("rnn", vocab_size=V, max_length=L, hidden=16, emb_dim=8)
    venv = TokenVecEnv(16, data=small_oracle_data, discriminator=disc, seed=0)
    probe = small_oracle_data.test[:8]
    before = venv.reward_fn._final(probe, torch.full((8,), L)).clone()
    model = PPO(GeneratorPolicy, SB3VecEnv(venv), n_steps=L, batch_size=48, seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    cb = DiscriminatorCallback()
    model.learn(16 * L * 2, callback=cb)
    assert cb.discriminator is disc and cb.rollouts == 2
    assert 0.0 <= cb.last_stats["heldout_acc"] <= 1.0 and math.isfinite(cb.last_stats["heldout_loss"])
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"discriminator/heldout_acc", "discriminator/loss"} <= set(header)
    assert not torch.allclose(before, venv.reward_fn._final(probe, torch.full((8,), L)))
    with pytest.raises(ValueError, match="not a trainable discriminator"):
        PPO(GeneratorPolicy, SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle")),
            n_steps=L, batch_size=24).learn(4 * L, callback=DiscriminatorCallback())


def test_wrapping_leaves_the_env_unchanged(small_oracle_data):
    env = TokenVecEnv(3, data=small_oracle_data, seed=0)
    env.reset(seed=0)
    env.step(np.array([1, 2, 3]))
    tokens = env.tokens.clone()
    wrapped = SB3VecEnv(env)
    assert env.autoreset_mode == AutoresetMode.NEXT_STEP and env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert wrapped.token_env is not env and wrapped.token_env.autoreset_mode == AutoresetMode.SAME_STEP
    assert wrapped.token_env.scorer is env.scorer  # the same reward and discriminator
    wrapped.reset()
    for _ in range(L):
        wrapped.step(np.array([4, 5, 6]))
    assert torch.equal(env.tokens, tokens)  # the original's sequences did not move
    same = TokenVecEnv(2, data=small_oracle_data, autoreset_mode="same_step")
    assert SB3VecEnv(same).token_env is same


def test_train_py_ppo_starts_from_an_mle_run(tmp_path, small_oracle_data, oracle_data):
    import train

    assert train.main(["--agent", "mle", "--budget", "smoke", "--out", str(tmp_path / "mle"), "--quiet"]) == 0
    assert train.main(["--agent", "ppo", "--budget", "smoke", "--discriminator", "oracle", "--kl-beta", "0.1",
                       "--init-from", str(tmp_path / "mle"), "--stop-after", "1", "--out", str(tmp_path / "ppo"),
                       "--quiet"]) == 0
    first = json.loads((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()[0])
    mle = json.loads((tmp_path / "mle" / "summary.json").read_text())["metrics"]
    assert first["nll_test"] == pytest.approx(mle["nll_test"], rel=1e-6)  # the policy is the MLE generator
    rows = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["kl"] == pytest.approx(0.0, abs=1e-6) and rows[1]["kl_beta"] == 0.1
    a = agents.make("ppo", oracle_data, {"discriminator": "oracle", "policy": "gru"})
    with pytest.raises(ValueError, match="policy='gru' has no generator"):
        a.warm_start({"generator": {}})


def test_cached_states_do_not_outlive_an_update(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    model = make_policy(small_oracle_data, gen)
    policy = model.policy
    obs, actions = prefixes_of(small_oracle_data.test[:4])
    rows = torch.arange(3, len(obs), L)
    with torch.no_grad():
        policy.get_distribution(obs[rows].float())  # fills the cache
    policy.set_training_mode(True)  # an update, as PPO.train makes it
    _, lp, _ = policy.evaluate_actions(obs.float(), actions)
    policy.optimizer.zero_grad()
    (-lp.mean()).backward()
    policy.optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        after = policy.get_distribution(obs[rows].float()).log_prob(actions[rows])
    expected = policy.generator.log_probs(small_oracle_data.test[:4]).detach()[:, 3]
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_policy_kwargs_from_an_mle_run_folder(tmp_path, oracle_data):
    import train

    assert train.main(["--agent", "mle", "--budget", "smoke", "--out", str(tmp_path / "mle"), "--quiet"]) == 0
    kwargs = generator_policy_kwargs(tmp_path / "mle")
    mle = agents.make("mle", oracle_data)
    mle.generator.load_state_dict(kwargs["generator_state"])  # the run's generator, with its sizes
    assert kwargs["emb_dim"] == mle.config.emb_dim and kwargs["hidden_dim"] == mle.config.hidden_dim
    with pytest.raises(ValueError, match="no generator file"):
        generator_policy_kwargs(tmp_path / "nothing")


def test_policy_kwargs_check_the_generators_vocabulary_when_given_one(tmp_path, small_oracle_data):
    """A generator file trained on other words of the same vocabulary size loads by size alone;
    given the env (or its data, Vocab or word list), its recorded vocabulary must be the env's."""
    from textgym.evaluate import export_generator

    (tmp_path / "corpus.txt").write_text("a b c\nb c a\n")
    (tmp_path / "renamed.txt").write_text("aX bX cX\nbX cX aX\n")  # as many words, other words
    env = TokenVecEnv(2, data=str(tmp_path / "corpus.txt"), discriminator="constant")
    renamed = TokenVecEnv(2, data=str(tmp_path / "renamed.txt"), discriminator="constant")
    oracle = TokenVecEnv(2, data=small_oracle_data, discriminator="oracle")
    V_c = env.vocab_size
    kw = dict(vocab_size=V_c, max_length=env.max_length, eos_id=0, emb_dim=4, hidden_dim=4)
    torch.save(export_generator(Generator(**kw), kw, env.data.vocab), tmp_path / "generator.pt")
    for given in (env, SB3VecEnv(env), env.data, env.data.vocab, env.data.vocab.itos):
        assert generator_policy_kwargs(tmp_path, vocab=given)["emb_dim"] == 4
    assert renamed.vocab_size == V_c and generator_policy_kwargs(tmp_path)["emb_dim"] == 4  # unchecked: loads
    with pytest.raises(ValueError, match="another vocabulary: 5 words there, 5 given, 3 ids differ \\(id 2 is 'a' there "
                                         "but 'aX' here\\)"):
        generator_policy_kwargs(tmp_path, vocab=renamed)
    with pytest.raises(ValueError, match="a corpus of 5 words, but the given vocabulary is the oracle benchmark"):
        generator_policy_kwargs(tmp_path / "generator.pt", vocab=oracle)
    with pytest.raises(ValueError, match="a state dict records none"):
        generator_policy_kwargs(Generator(**kw).state_dict(), vocab=env)
    kw = dict(vocab_size=V, max_length=L, eos_id=None, emb_dim=4, hidden_dim=4)
    torch.save(export_generator(Generator(**kw), kw, None), tmp_path / "oracle.pt")
    assert generator_policy_kwargs(tmp_path / "oracle.pt", vocab=oracle)["hidden_dim"] == 4
    with pytest.raises(ValueError, match="the oracle benchmark \\(no vocabulary\\), but the given vocabulary is a corpus"):
        generator_policy_kwargs(tmp_path / "oracle.pt", vocab=env)


def test_a_policy_loaded_from_a_corpus_generator_file_cuts_its_samples_at_eos(tmp_path):
    """The file records the data's end-of-sequence id; it was dropped, so the policy's generator
    sampled every sequence to the full length, tokens after <eos> included."""
    from textgym.evaluate import export_generator

    (tmp_path / "corpus.txt").write_text("a b c\nb c a\nc a\n")
    env = TokenVecEnv(4, data=str(tmp_path / "corpus.txt"), discriminator="constant")
    assert env.eos_id is not None
    kw = dict(vocab_size=env.vocab_size, max_length=env.max_length, eos_id=env.eos_id, emb_dim=4, hidden_dim=4)
    torch.save(export_generator(Generator(**kw), kw, env.data.vocab), tmp_path / "generator.pt")
    kwargs = generator_policy_kwargs(tmp_path, vocab=env)
    assert kwargs["eos_id"] == env.eos_id
    model = PPO(GeneratorPolicy, SB3VecEnv(env), n_steps=4, batch_size=16, seed=0, policy_kwargs=kwargs)
    assert model.policy.generator.eos_id == env.eos_id
    assert generator_policy_kwargs(tmp_path, eos_id=None)["eos_id"] is None  # an explicit value wins
    with pytest.raises(ValueError, match="GeneratorPolicy takes no net_arch"):
        PPO(GeneratorPolicy, SB3VecEnv(env), n_steps=4, batch_size=16, policy_kwargs={**kwargs, "net_arch": [64]})
    for unused in ({"activation_fn": torch.nn.ReLU}, {"ortho_init": True}, {"features_extractor_kwargs": {"x": 1}}):
        with pytest.raises(ValueError, match=f"GeneratorPolicy takes no {next(iter(unused))}"):  # it would be ignored
            PPO(GeneratorPolicy, SB3VecEnv(env), n_steps=4, batch_size=16, policy_kwargs={**kwargs, **unused})


def test_the_mc_reward_completes_prefixes_with_the_policys_generator(small_oracle_data):
    import discriminators

    disc = discriminators.make("rnn", vocab_size=V, max_length=L, hidden=16, emb_dim=8)
    venv = TokenVecEnv(8, data=small_oracle_data, discriminator=disc, reward="mc", n_rollouts=2, seed=0)
    model = PPO(GeneratorPolicy, SB3VecEnv(venv), n_steps=L, batch_size=48, seed=0)
    model.learn(8 * L, callback=DiscriminatorCallback())
    assert venv.reward_fn.rollout_policy is model.policy.generator


def test_a_model_with_the_generator_policy_saves_and_loads(tmp_path, small_oracle_data):
    gen = trained_generator(small_oracle_data)
    model = make_policy(small_oracle_data, gen)
    model.save(tmp_path / "ppo.zip")
    loaded = PPO.load(tmp_path / "ppo.zip", env=model.get_env())
    assert isinstance(loaded.policy, GeneratorPolicy)
    assert gen_state_equal(loaded.policy.generator, gen)
    model.policy.save(tmp_path / "policy.pt")  # the policy alone (it was refused on load: SB3's net_arch defaults)
    policy = GeneratorPolicy.load(tmp_path / "policy.pt")
    assert gen_state_equal(policy.generator, gen)
    assert all(torch.equal(a, b) for a, b in zip(policy.value_head.state_dict().values(),
                                                 model.policy.value_head.state_dict().values(), strict=True))


@pytest.mark.parametrize("discriminator", ["oracle", "cnn"])
def test_ppo_agent_resumes_from_a_state_in_memory_and_leaves_it_untouched(small_oracle_data, discriminator):
    """Two PPO agents loaded from one in-memory state go on like the original, and loading
    copies: neither the env's token buffer, the policy's optimizer nor the discriminator's
    trainer shares tensors with the dict (the env writes its tokens in place)."""
    # rollouts of 4 steps: the saved state falls mid-episode (L = 6), with tokens in the env's buffer
    cfg = {"discriminator": discriminator, "num_envs": 8, "n_steps": 4, "adv_steps": 10, "sb3_kwargs": {"batch_size": 16},
           "discriminator_options": {"size": "small"} if discriminator == "cnn" else {}}
    a = agents.make("ppo", small_oracle_data, cfg, seed=3)
    a.train_iteration()
    state = copy.deepcopy(a.state_dict())
    untouched = copy.deepcopy(state)
    cont = [a.train_iteration() for _ in range(2)]
    for _ in range(2):
        b = agents.make("ppo", small_oracle_data, cfg, seed=4)
        b.load_state_dict(state)
        assert [b.train_iteration() for _ in range(2)] == cont
    assert same_leaves(state, untouched)


def test_contrib_algorithms_refuse_the_generator_policy_with_a_message(small_oracle_data):
    """MaskablePPO and RecurrentPPO need their own policy classes; both say so (RecurrentPPO used
    to fail with an AttributeError on one of its internal names)."""
    from sb3_contrib import MaskablePPO, RecurrentPPO

    env = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle", seed=0))
    with pytest.raises(ValueError, match="MaskableActorCriticPolicy"):
        MaskablePPO(GeneratorPolicy, env, n_steps=L, batch_size=24)
    with pytest.raises(TypeError, match="RecurrentPPO .*use it with PPO or A2C"):
        RecurrentPPO(GeneratorPolicy, env, n_steps=L, batch_size=24)


def test_generator_policy_kwargs_take_a_policys_state_dict_and_refuse_other_dicts(small_oracle_data):
    gen = trained_generator(small_oracle_data)
    policy = make_policy(small_oracle_data, gen).policy
    kwargs = generator_policy_kwargs(policy.state_dict())
    assert all(torch.equal(kwargs["generator_state"][k], v) for k, v in gen.state_dict().items())
    with pytest.raises(ValueError, match="not a generator's"):
        generator_policy_kwargs({"policy": policy.state_dict()})


def test_the_policy_takes_adams_foreach_option(small_oracle_data):
    """The fused kernel is the default, not forced: fused and foreach exclude each other."""
    env = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle", seed=0))
    model = PPO(GeneratorPolicy, env, n_steps=L, batch_size=24, seed=0, policy_kwargs=dict(optimizer_kwargs={"foreach": True}))
    group = model.policy.optimizer.param_groups[0]
    assert group["foreach"] and not group["fused"] and group["eps"] == 1e-5


def test_kl_callback_adapts_beta_per_rollout_tokens_and_reports_each_rollouts_own_kl(small_oracle_data):
    """R4: the first rollout (π = π_ref, KL 0: e = -0.2) of 4 envs × 6 steps = 24 tokens gives
    β = 0.5 (1 - 0.2 · 24 / 100). R3: last_kl is the mean KL of the last rollout only."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from agents.generator import Generator
    from agents.sb3_policy import GeneratorPolicy, KLRewardCallback, generator_policy_kwargs
    from textgym import TokenVecEnv
    from textgym.rewards import KLController
    from textgym.sb3 import SB3VecEnv

    Lq, Vq = 6, 50
    g = Generator(Vq, Lq, seed=0)
    env = SB3VecEnv(TokenVecEnv(4, data=small_oracle_data, discriminator="oracle", seed=0))
    model = PPO(GeneratorPolicy, env, n_steps=Lq, batch_size=24, seed=0, learning_rate=0.05,
                policy_kwargs=generator_policy_kwargs(g.state_dict()))
    reference = copy.deepcopy(g)
    kl = KLRewardCallback(model.policy.generator, KLController(0.5, target=0.05, horizon=100))

    class Rec(BaseCallback):
        def __init__(self):
            super().__init__()
            self.steps = []

        def _on_step(self):
            self.steps.append((self.locals["actions"].copy(), self.locals["log_probs"].clone(),
                               self.locals["obs_tensor"].clone()))
            return True

    model.learn(4 * Lq, callback=kl)
    assert kl.controller.beta == pytest.approx(0.5 * (1 - 0.2 * 24 / 100), rel=1e-6)
    rec = Rec()
    model.learn(4 * Lq * 3, callback=CallbackList([rec, kl]), reset_num_timesteps=False)
    last = rec.steps[-Lq:]
    ks = []
    for actions, lp, obs in last:
        tokens = obs.round().long()
        lengths = (tokens != Vq).sum(1)
        ref_lp = torch.log_softmax(reference(tokens)[0], -1)[torch.arange(4), lengths, torch.as_tensor(actions).long()]
        ks.append((lp - ref_lp).detach())
    assert kl.last_kl == pytest.approx(float(torch.cat(ks).mean()), rel=1e-4, abs=1e-6)
