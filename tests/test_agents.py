"""Agents: the generator against slow references, the delayed rollout copy's rule, MaliGAN's
weights and mixed schedule against hand computations, every agent end to end with an exact
resume, learning with the oracle as a perfect discriminator, and refusals of bad configs."""
from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

import agents
from agents.generator import Generator, RolloutCopy
from agents.adversarial import discounted_returns
from agents.config import fields_of
from agents.maligan_mixed import clamp_length
from textgym.data import OracleData, TextData
from textgym.oracle import OracleLSTM
from textgym.protocols import RolloutPolicy, SequenceModel

V, L = 50, 8
ALL = ["mle", "seqgan", "maligan", "maligan-mixed", "scratchgan", "reinforce", "maskgan"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


@pytest.fixture(scope="module")
def tiny() -> OracleData:
    return OracleData(OracleLSTM(vocab_size=V, max_length=L, seed=3), max_length=L, n_train=500, n_test=200)


def tiny_config(**over):
    """A few seconds of everything: 1 MLE epoch, 3 adversarial steps, small D rounds."""
    cfg = dict(mle_epochs=1, adv_steps=3, batch_size=32, n_rollouts=2, d_pretrain_steps=1, d_steps=1, d_epochs=1,
               d_samples=64, mixed_every=1, mixed_K=3, mixed_m=2)
    cfg.update(over)
    return cfg


def make(name, data, cfg, seed=0, device="cpu"):
    """agents.make with the shared tiny settings cut to the fields this agent has (agents.make
    itself refuses a field the agent lacks)."""
    fields = fields_of(agents.preset(name).config_class)
    return agents.make(name, data, {k: v for k, v in cfg.items() if k in fields}, device=device, seed=seed)


def gen_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def same_leaves(a, b) -> bool:
    """Two nested states hold equal leaves, tensors bit for bit (NaN equals NaN)."""
    x, y = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    return len(x) == len(y) and all(torch.equal(u, v) if torch.is_tensor(u) else (u == v or u != u and v != v)
                                    for u, v in zip(x, y))


# ---------------------------------------------------------------------- generator
def slow_log_probs(g: Generator, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-step reference with nn.LSTMCell holding the generator's weights."""
    cell = torch.nn.LSTMCell(g.emb_dim, g.hidden_dim)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(g.lstm, name + "_l0"))
        N, T = tokens.shape
        h = torch.zeros(N, g.hidden_dim)
        c = torch.zeros(N, g.hidden_dim)
        prev = torch.full((N,), g.vocab_size)
        out = torch.empty(N, T)
        for t in range(T):
            h, c = cell(g.embedding(prev), (h, c))
            logp = torch.log_softmax(g.out(h) / temperature, dim=-1)
            out[:, t] = logp[torch.arange(N), tokens[:, t].clamp(max=g.vocab_size - 1)]
            prev = tokens[:, t]
    return out


def test_generator_log_probs_match_slow_reference_and_are_differentiable():
    g = Generator(V, L, seed=1)
    tokens = torch.randint(0, V, (6, L), generator=torch.Generator().manual_seed(0))
    lp = g.log_probs(tokens)
    torch.testing.assert_close(lp.detach(), slow_log_probs(g, tokens), rtol=1e-5, atol=1e-5)
    lp.sum().backward()
    assert g.out.weight.grad is not None and torch.isfinite(g.out.weight.grad).all()
    nll = g.nll(tokens, torch.full((6,), 5))
    assert nll == pytest.approx(float(-lp.detach()[:, :5].mean()), rel=1e-5)
    for tau in (0.5, 1.5):  # the distribution sampled at temperature tau
        torch.testing.assert_close(g.log_probs(tokens, temperature=tau).detach(), slow_log_probs(g, tokens, tau),
                                   rtol=1e-5, atol=1e-5)
        with torch.no_grad():  # the evaluation path, which makes no (N, T, V) logits
            torch.testing.assert_close(g.log_probs(tokens, temperature=tau), slow_log_probs(g, tokens, tau),
                                       rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        g.log_probs(tokens, temperature=0.0)


def test_generator_follows_the_protocols_and_seeded_sampling_reproduces():
    g = Generator(V, L, seed=1)
    assert isinstance(g, SequenceModel) and isinstance(g, RolloutPolicy)
    a = g.sample(64, generator=torch.Generator().manual_seed(5))
    b = g.sample(64, generator=torch.Generator().manual_seed(5))
    c = g.sample(64, generator=torch.Generator().manual_seed(6))
    assert a.shape == (64, L) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < V


def test_low_temperature_sampling_is_argmax():
    g = Generator(V, L, init="default", seed=2)
    tokens = g.sample(32, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = g(tokens)
    assert torch.equal(tokens, logits.argmax(-1))


def test_sampling_stops_at_eos_and_pads():
    g = Generator(12, 10, eos_id=0, init="default", seed=0)
    with torch.no_grad():
        g.out.bias[0] += 1.5  # make EOS frequent
    tokens, lengths = g.sample_with_lengths(200, generator=torch.Generator().manual_seed(0))
    assert (lengths < 10).any() and (lengths >= 1).all()
    for row, n in zip(tokens, lengths):
        n = int(n)
        assert (row[: n - 1] != 0).all() and (row[: n - 1] < 12).all()
        if n < 10 or row[n - 1] == 0:
            assert row[n - 1] == 0 or n == 10
        assert (row[n:] == g.pad_id).all()


def test_rollout_keeps_prefixes_and_is_seeded():
    g = Generator(V, L, seed=1)
    tokens = torch.randint(0, V, (20, L), generator=torch.Generator().manual_seed(1))
    plen = torch.arange(20) % (L + 1)
    out = g.rollout(tokens, plen, generator=torch.Generator().manual_seed(3))
    again = g.rollout(tokens, plen, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    keep = torch.arange(L) < plen[:, None]
    assert torch.equal(out[keep], tokens[keep])
    assert (out[~keep] != tokens[~keep]).any()


def test_rollout_copy_mix_rule_is_exact():
    g = Generator(V, L, seed=1)
    beta = RolloutCopy(g, rate=0.8)
    old = copy.deepcopy(beta.policy.state_dict())
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    g.log_probs(torch.randint(0, V, (4, L))).sum().neg().backward()
    opt.step()
    theta = g.state_dict()
    assert not torch.equal(theta["out.weight"], old["out.weight"])
    beta.update(g)
    for k, v in beta.policy.state_dict().items():
        torch.testing.assert_close(v, 0.8 * old[k] + 0.2 * theta[k], rtol=0, atol=1e-7)
    # the rollout policy samples with β, not θ: the same draws as β's own rollout, not θ's
    assert isinstance(beta, RolloutPolicy) and beta.vocab_size == V
    x, p = torch.randint(0, V, (64, L)), torch.full((64,), 2)

    def completed(policy):
        return policy.rollout(x, p, generator=torch.Generator().manual_seed(0))

    assert torch.equal(completed(beta), completed(beta.policy)) and not torch.equal(completed(beta), completed(g))


def test_rollout_copy_hard_rule_copies_every_k():
    g = Generator(V, L, seed=1)
    beta = RolloutCopy(g, rule="hard", every=2)
    old = copy.deepcopy(beta.policy)
    with torch.no_grad():
        g.out.bias += 1.0
    beta.update(g)
    assert gen_state_equal(beta.policy, old)
    beta.update(g)
    assert gen_state_equal(beta.policy, g)


def test_seqgan_rollout_policy_starts_from_the_pretrained_generator(tiny):
    """SeqGAN's Algorithm 1, line 3: β ← θ after pretraining. The copy was made when the agent
    was built (the random init), so without the sync the first rollouts came from it."""
    agent = make("seqgan", tiny, tiny_config(discriminator="oracle", mle_epochs=2, adv_steps=2), seed=0)
    init = copy.deepcopy(agent.generator.state_dict())
    agent.train_iteration()
    agent.train_iteration()  # MLE done: θ_pre
    pretrained = copy.deepcopy(agent.generator.state_dict())
    assert not torch.equal(pretrained["out.weight"], init["out.weight"])
    agent.train_iteration()  # the first adversarial step: β ← θ_pre, one update to θ_1, β ← 0.8 β + 0.2 θ_1
    theta1 = agent.generator.state_dict()
    beta = agent.rollout_copy.policy.state_dict()
    for k in pretrained:
        want = 0.8 * pretrained[k] + 0.2 * theta1[k]
        torch.testing.assert_close(beta[k], want, rtol=1e-5, atol=1e-6)
    assert agent.reward.rollout_policy is agent.rollout_copy  # the MC rewards complete prefixes with β


# ---------------------------------------------------------------------- pure pieces
class TableScorer:
    """A fixed probabilistic scorer: the logit of row i is ``logits[i]``."""

    is_probabilistic = True
    vocab_size = V

    def __init__(self, logits):
        self.logits = logits

    def score(self, tokens, lengths=None):
        return self.logits[: tokens.shape[0]].clone()


def test_maligan_weights_equal_hand_computation(tiny):
    """The returns and baseline the maligan agent trains on, against r_D = D/(1-D) by hand."""
    logits = torch.tensor([0.5, -1.0, 2.0])
    D = [1 / (1 + math.exp(-s)) for s in logits.tolist()]
    r = [d / (1 - d) for d in D]  # r_D = D / (1 - D)
    w = [3 * x / sum(r) for x in r]  # normalized over the batch, scaled to mean 1
    a = make("maligan", tiny, tiny_config(discriminator=TableScorer(logits), baseline="mean"), seed=0)
    tokens = torch.randint(0, V, (3, L), generator=torch.Generator().manual_seed(0))
    lengths = torch.full((3,), L)
    R = a.returns(tokens, lengths)  # every token of x_i gets w_i (terminal reward, γ = 1)
    torch.testing.assert_close(R, torch.tensor(w)[:, None].expand(3, L))
    assert a.baseline(R, torch.ones(3, L, dtype=torch.bool)) == pytest.approx(sum(w) / 3)  # b = mean w = 1
    # a mean over sequences, not tokens: longer sequences do not weigh more
    short = torch.tensor([L, 2, 5])
    R2 = a.returns(tokens, short)
    assert a.baseline(R2, torch.arange(L)[None, :] < short[:, None]) == pytest.approx(1.0)
    # the paper's baseline rises from 0 towards 1: min(1, k / baseline_rise) after k updates
    b = make("maligan", tiny, tiny_config(discriminator=TableScorer(logits), baseline="rise", baseline_rise=4), seed=0)
    assert b.baseline(R, torch.ones(3, L, dtype=torch.bool)) == 0.0
    b.g_updates = 2
    assert b.baseline(R, torch.ones(3, L, dtype=torch.bool)) == 0.5
    b.g_updates = 9
    assert b.baseline(R, torch.ones(3, L, dtype=torch.bool)) == 1.0
    # huge logits do not overflow (normalized in log space)
    a.reward.scorer.logits = torch.tensor([500.0, 0.0, -500.0])
    assert torch.isfinite(a.returns(tokens, lengths)).all()


def test_clamp_length_schedule():
    T, K, every = 20, 3, 2
    got = [clamp_length(i, T, K, every) for i in range(16)]
    assert got == [20, 20, 17, 17, 14, 14, 11, 11, 8, 8, 5, 5, 2, 2, 0, 0]
    with pytest.raises(ValueError):
        clamp_length(0, T, 0, 1)


def test_discounted_returns_against_loop():
    r = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([6, 3, 1, 5])
    got = discounted_returns(r, lengths, 0.7)
    for i in range(4):
        for t in range(6):
            want = sum(0.7 ** (s - t) * float(r[i, s]) for s in range(t, int(lengths[i]))) if t < lengths[i] else 0.0
            assert float(got[i, t]) == pytest.approx(want, abs=1e-5)


# ---------------------------------------------------------------------- maligan-mixed
def test_mixed_batch_clamps_exactly_n_real_tokens_and_n_moves(tiny):
    agent = make("maligan-mixed", tiny, tiny_config(discriminator="oracle", mle_epochs=0, adv_steps=4, mixed_m=3), seed=0)
    real, real_len = agent.real_batch(10)
    for N in (0, 3, 7):
        tokens, lengths, clamped = agent.mixed_batch(real, real_len, N)
        assert tokens.shape == (30, L) and clamped.sum(1).eq(N).all()
        rows = real.repeat_interleave(3, dim=0)
        assert torch.equal(tokens[:, :N], rows[:, :N])
        if N < L:
            assert (tokens[:, N:] != rows[:, N:]).any()
    seen = [agent.train_iteration() for _ in range(4)]
    assert [s["clamp_length"] for s in seen] == [8.0, 5.0, 2.0, 0.0]  # T=8, K=3, every=1
    # no clamped token at N = 0: no MLE loss (a 0 there read as a perfect fit)
    assert all(s["mle_loss"] > 0 for s in seen[:3]) and "mle_loss" not in seen[3]


# ---------------------------------------------------------------------- every agent end to end
SMALL_D = {"cnn": {"size": "small"}, "rnn": {"emb_dim": 16, "hidden": 16}}


@pytest.mark.parametrize("scorer", ["oracle", "discriminator"])
@pytest.mark.parametrize("name", ALL)
def test_agent_runs_and_resumes_identically(name, scorer, tiny, device):
    if name == "mle" and scorer == "discriminator":
        pytest.skip("mle has no discriminator")
    d = getattr(agents.preset(name).config(), "discriminator", "cnn")
    cfg = tiny_config(mle_epochs=1, discriminator_options=SMALL_D[d], **({"discriminator": "oracle"} if scorer == "oracle" else {}))
    a = make(name, tiny, cfg, seed=7, device=device)
    # mle_epochs + d_pretrain_steps (a learned discriminator only) + adv_steps
    assert a.total_iterations == (1 if name == "mle" else 4 if scorer == "oracle" else 5)
    first = [a.train_iteration() for _ in range(2)]
    for s in first:
        assert isinstance(s["phase"], str)
        assert all(math.isfinite(v) for v in s.values() if isinstance(v, float))
    state = copy.deepcopy(a.state_dict())
    state_before = copy.deepcopy(state)
    cont = [a.train_iteration() for _ in range(2)]
    if scorer == "discriminator" and name != "mle":
        assert "d_loss" in cont[-1] and cont[-1]["phase"] == "adv"
    b = make(name, tiny, cfg, seed=7, device=device)
    b.load_state_dict(state)
    assert b.iteration == 2
    assert [b.train_iteration() for _ in range(2)] == cont
    assert gen_state_equal(a.generator, b.generator)
    # b trained on copies: nothing of the dict it was loaded from changed (optimizer moments included)
    assert same_leaves(state, state_before)


def test_same_seed_same_run_other_seed_other_run(tiny):
    runs = []
    for seed in (1, 1, 2):
        a = make("seqgan", tiny, tiny_config(discriminator="oracle"), seed=seed)
        runs.append([a.train_iteration() for _ in range(3)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


# ---------------------------------------------------------------------- learning with a perfect discriminator
def nll_oracle(agent, data) -> float:
    return data.oracle.nll(agent.generator.sample(3000, generator=torch.Generator().manual_seed(123)))


@pytest.mark.parametrize("name,steps,margin", [("reinforce", 25, 1.5), ("seqgan", 15, 0.5), ("maskgan", 25, 1.0), ("maligan", 40, 0.3)])
def test_policy_gradient_lowers_nll_oracle(name, steps, margin, tiny):
    """With the oracle as the reward (MaliGAN: the optimal discriminator), a short seeded run
    lowers NLL-oracle of an MLE-pretrained generator by a clear margin (over seeds 0-4 the drops
    were >= 2.8, 0.7, 2.1, 0.6 nats)."""
    # gen_lr 0.01 for all (maskgan's preset 5e-4 is tuned for a learned discriminator)
    cfg = tiny_config(discriminator="oracle", mle_epochs=4, adv_steps=steps, batch_size=64, n_rollouts=4, gen_lr=0.01)
    agent = make(name, tiny, cfg, seed=0)
    for _ in range(4):
        agent.train_iteration()
    before = nll_oracle(agent, tiny)
    while agent.iteration < agent.total_iterations:
        agent.train_iteration()
    after = nll_oracle(agent, tiny)
    assert after < before - margin, (name, before, after)


# ---------------------------------------------------------------------- registry and refusals
class PlainScorer:
    """A fixed, non-probabilistic scorer without per-prefix scores."""

    is_probabilistic = False
    vocab_size = V

    def score(self, tokens, lengths=None):
        return tokens.float().mean(1)


class ProbScorer(PlainScorer):
    is_probabilistic = True


def test_registry_lists_presets_and_registers(tiny):
    names = agents.available()
    assert set(ALL) <= set(names) and names == sorted(names)
    with pytest.raises(ValueError, match="seqgan"):
        agents.make("nope", "oracle")

    class Dummy(agents.MLEAgent):
        pass

    p = agents.Preset("dummy-test", Dummy, {"mle_epochs": 2}, "none")
    agents.register(p)
    try:
        assert "dummy-test" in agents.available()
        assert agents.make("dummy-test", tiny).config.mle_epochs == 2
        with pytest.raises(ValueError, match="already registered"):
            agents.register(p)
    finally:
        agents.PRESETS.pop("dummy-test")
    with pytest.raises(ValueError, match="mle_epocs.*did you mean mle_epochs"):
        agents.register(agents.Preset("typo", Dummy, {"mle_epocs": 2}, "none"))


@pytest.mark.parametrize("name,over,match", [
    ("mle", {"batch_size": 0}, "batch_size"),
    ("mle", {"mle_lr": -1.0}, "mle_lr"),
    ("mle", {"init": "xavier"}, "init"),
    ("seqgan", {"baseline": "median"}, "baseline"),
    ("seqgan", {"reward": "bogus"}, "reward"),
    ("seqgan", {"gamma": 1.5}, "gamma"),
    ("seqgan", {"transform": "cube"}, "transform"),
    ("seqgan", {"discriminator": "human"}, "human"),
    ("maligan", {"reward": "mc"}, "maligan"),
    ("maskgan", {"adv_clip": -1.0}, "adv_clip"),
    ("maligan-mixed", {"mixed_K": 0}, "mixed_K"),
])
def test_bad_config_values_are_refused(name, over, match, tiny):
    with pytest.raises(ValueError, match=match):
        make(name, tiny, tiny_config(**{"discriminator": "oracle", **over}))


@pytest.mark.parametrize("name,scorer,match", [
    ("maligan", PlainScorer(), "probabilistic"),          # r_D = D/(1-D) needs P(real)
    ("maligan-mixed", PlainScorer(), "probabilistic"),
    ("seqgan", PlainScorer(), "probabilistic"),            # transform 'prob' on a plain score
    ("scratchgan", ProbScorer(), "per-prefix"),            # dense reward without prefix scores
    ("maskgan", ProbScorer(), "per-prefix"),
    ("scratchgan", "cnn", "per-prefix"),                   # the registry's CNN has no prefix scores
    ("seqgan", "transformer", "'transformer' is invalid: expected one of"),
])
def test_scorers_that_cannot_give_the_reward_are_refused(name, scorer, match, tiny):
    with pytest.raises(ValueError, match=match):
        make(name, tiny, tiny_config(discriminator=scorer, discriminator_options={}))


def test_fixed_scorer_object_is_used_without_training(tiny):
    a = make("reinforce", tiny, tiny_config(discriminator=ProbScorer()), seed=0)
    assert a.d_trainer is None and a.total_iterations == 1 + 3
    stats = [a.train_iteration() for _ in range(2)]
    assert stats[1]["phase"] == "adv" and math.isfinite(stats[1]["g_loss"])


def test_oracle_scorer_needs_oracle_data():
    tokens = torch.randint(1, 10, (16, 5))
    data = TextData(vocab_size=10, max_length=5, eos_id=0, train=tokens, train_lengths=torch.full((16,), 5), name="toy")
    with pytest.raises(ValueError, match="oracle"):
        agents.make("seqgan", data, {"discriminator": "oracle"})


def test_non_finite_losses_name_the_quantity_and_iteration(tiny):
    a = make("mle", tiny, tiny_config())
    a.mle_loss = lambda tokens, lengths: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(FloatingPointError, match="g_loss became nan at iteration 0"):
        a.train_iteration()
    b = make("reinforce", tiny, tiny_config(discriminator="oracle"))
    b.train_iteration()
    b.returns = lambda tokens, lengths: torch.full(tokens.shape, float("inf"))
    with pytest.raises(FloatingPointError, match="at iteration 1"):
        b.train_iteration()


# ---------------------------------------------------------------------- corpora (EOS, variable lengths)
def toy_corpus(n: int = 200, V_: int = 12, T: int = 7, seed: int = 0) -> TextData:
    """Sentences of ids 2..V-1 ending in <eos> = 0, padded with V, lengths 2..T."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, T + 1, (n,), generator=g)
    tokens = torch.randint(2, V_, (n, T), generator=g)
    pos = torch.arange(T)
    tokens[pos == (lengths - 1)[:, None]] = 0
    tokens[pos >= lengths[:, None]] = V_
    return TextData(vocab_size=V_, max_length=T, eos_id=0, train=tokens, train_lengths=lengths, name="toy")


@pytest.mark.parametrize("name", ALL)
def test_agents_run_on_a_corpus_with_eos(name, toy_scorer):
    data = toy_corpus()
    a = make(name, data, tiny_config(discriminator=toy_scorer(12), batch_size=16), seed=0)
    for _ in range(3):
        s = a.train_iteration()
        assert all(math.isfinite(v) for v in s.values() if isinstance(v, float)), s
    tokens, lengths = a.generator.sample_with_lengths(64, generator=torch.Generator().manual_seed(0))
    assert (tokens[torch.arange(64), lengths - 1] == 0).logical_or(lengths == 7).all()


def test_mixed_batch_clamps_short_real_sentences_whole(toy_scorer):
    data = toy_corpus()
    a = make("maligan-mixed", data, tiny_config(discriminator=toy_scorer(12), mixed_m=2), seed=0)
    real, real_len = a.real_batch(40)
    N = 4
    tokens, lengths, clamped = a.mixed_batch(real, real_len, N)
    rows, rlen = real.repeat_interleave(2, dim=0), real_len.repeat_interleave(2)
    short = rlen <= N
    assert short.any() and (~short).any()
    assert torch.equal(tokens[short], rows[short]) and torch.equal(lengths[short], rlen[short])
    assert torch.equal(tokens[~short, :N], rows[~short, :N])
    assert torch.equal(clamped.sum(1), rlen.clamp(max=N))


# ---------------------------------------------------------------------- the discriminator's information
def test_heldout_accuracy_is_chance_for_a_constant_discriminator_and_warns(tiny):
    a = make("seqgan", tiny, tiny_config(discriminator="constant", mle_epochs=0, adv_steps=4, n_rollouts=2), seed=0)
    assert a.d_trainer is None and a.n_heldout == len(tiny.test)
    with pytest.warns(RuntimeWarning, match="within 0.05 of chance for 3 rounds") as caught:
        stats = [a.train_iteration() for _ in range(3)]
    assert all(s["d_heldout_acc"] == 0.5 for s in stats)
    weak = [w for w in caught if "chance" in str(w.message)]
    assert weak[0].filename.endswith("agents/adversarial.py")  # the agent's line, not torch.no_grad's wrapper


def test_heldout_reals_are_never_trained_on(tiny):
    # with a test set: its sequences, which neither the generator nor the discriminator trains on
    a = make("seqgan", tiny, tiny_config(discriminator_options=SMALL_D["cnn"]), seed=0)
    assert a.n_heldout == len(tiny.test) and a.d_pool == len(tiny.train)
    assert torch.equal(a.heldout_real[0], tiny.test[: a.n_heldout])
    # without one: the last training sequences, outside every draw of the discriminator's reals
    no_test = TextData(vocab_size=V, max_length=L, eos_id=None, train=tiny.train, train_lengths=tiny.train_lengths,
                       name="no-test")
    b = make("seqgan", no_test, tiny_config(discriminator_options=SMALL_D["cnn"]), seed=0)
    pool = {tuple(r.tolist()) for r in b.train_tokens[: b.d_pool]}
    held = {tuple(r.tolist()) for r in b.heldout_real[0]} - pool  # the small oracle repeats a few rows
    assert b.n_heldout == len(tiny.train) // 5 and len(held) > 90
    for _ in range(20):
        real, _ = b.real_batch(64)
        assert not held & {tuple(r.tolist()) for r in real}
    learned = [a.train_iteration() for _ in range(a.total_iterations)]
    accs = [s["d_heldout_acc"] for s in learned if "d_heldout_acc" in s]
    assert len(accs) == 1 + 3 and all(0.0 <= x <= 1.0 for x in accs)  # after the pretraining round and each step


def test_mixed_maligan_trains_its_discriminator_on_mixed_samples(tiny):
    """Algorithm 2, lines 6-8: negatives keep the first N tokens of a real sequence."""
    a = make("maligan-mixed", tiny, tiny_config(discriminator_options=SMALL_D["cnn"], mle_epochs=0, d_pretrain_steps=0,
                                                mixed_K=3, mixed_every=1, adv_steps=3), seed=0)
    a.train_iteration()  # adversarial step 0: N = T, pure MLE
    N = a.clamp_length()
    assert 0 < N < L
    fake, _ = a.discriminator_fakes(50)
    prefixes = {tuple(r[:N].tolist()) for r in a.train_tokens}
    assert all(tuple(r[:N].tolist()) in prefixes for r in fake)
    free, _ = a.fake_batch(50)
    assert sum(tuple(r[:N].tolist()) in prefixes for r in free) < 10  # free samples rarely share a whole real prefix


def test_maskgan_warms_up_its_critic_before_the_first_actor_update(tiny):
    a = make("maskgan", tiny, tiny_config(discriminator="oracle", mle_epochs=0, critic_warmup=5, gen_lr=0.01), seed=0)
    before = copy.deepcopy(a.generator.state_dict())
    a.train_iteration()
    steps = lambda opt: max(int(s["step"]) for s in opt.state.values())
    assert steps(a.critic_opt) == 6 and steps(a.gen_opt) == 1
    assert any(not torch.equal(v, before[k]) for k, v in a.generator.state_dict().items())  # one actor update


# ---------------------------------------------------------------------- MLE early stopping
def test_mle_early_stopping_keeps_the_best_validation_generator_and_resumes(tiny):
    cfg = dict(mle_epochs=30, batch_size=16, mle_lr=0.05, hidden_dim=64, val_size=100, patience=2)
    a = agents.make("mle", tiny, cfg, seed=0)
    assert a.train_tokens.shape[0] == 400  # the validation split is never trained on
    stats, snapshots = [], []
    while a.iteration < a.total_iterations:
        stats.append(a.train_iteration())
        snapshots.append(copy.deepcopy(a.generator.state_dict()))
        if a.iteration == 3:
            state = copy.deepcopy(a.state_dict())
    vals = [s["nll_val"] for s in stats]
    best = min(range(len(vals)), key=vals.__getitem__)
    assert a.iteration < 30, "this over-fitting configuration should stop early"
    assert a.total_iterations == a.iteration == best + 1 + 2  # stopped `patience` iterations after the best
    assert all(v >= vals[best] for v in vals[best + 1 :])
    assert all(torch.equal(x, snapshots[best][k]) for k, x in a.generator.state_dict().items())
    b = agents.make("mle", tiny, cfg, seed=0)
    b.load_state_dict(state)
    while b.iteration < b.total_iterations:
        b.train_iteration()
    assert b.iteration == a.iteration and gen_state_equal(a.generator, b.generator)


def test_mle_iteration_updates_and_early_stopping_refusals(tiny):
    a = agents.make("mle", tiny, dict(mle_epochs=3, iteration_updates=2, batch_size=16), seed=0)
    before = copy.deepcopy(a.mle_opt.state_dict())
    a.train_iteration()
    assert a.mle_opt.state_dict()["state"][0]["step"] == 2 and not before["state"]
    with pytest.raises(agents.ConfigError, match="patience needs a validation split"):
        agents.make("mle", tiny, dict(patience=2), seed=0)
    with pytest.raises(agents.ConfigError, match="leaves no training sequences"):
        agents.make("mle", tiny, dict(val_size=500, patience=1), seed=0)


def test_kl_shaping_starts_at_zero_and_resumes_exactly(tiny):
    cfg = tiny_config(discriminator="oracle", adv_steps=6, kl_beta=0.5, kl_target=0.01, kl_horizon=100, gen_lr=0.05,
                      reward="terminal", baseline="mean")
    a = make("reinforce", tiny, cfg, seed=3)
    while a.iteration < a.adv_start:
        a.train_iteration()
    first = a.train_iteration()
    assert first["kl"] == pytest.approx(0.0, abs=1e-6) and first["kl_beta"] == 0.5  # π = π_ref at the start
    assert gen_state_equal(a.kl_reference, make("reinforce", tiny, cfg, seed=3).generator) is False
    state = copy.deepcopy(a.state_dict())
    rest = [a.train_iteration() for _ in range(3)]
    assert rest[-1]["kl"] != 0 and rest[-1]["kl_beta"] != 0.5  # the adaptive β moved
    b = make("reinforce", tiny, cfg, seed=3)
    b.load_state_dict(state)
    assert [b.train_iteration() for _ in range(3)] == rest
    with pytest.raises(agents.ConfigError, match="kl_beta"):
        make("reinforce", tiny, tiny_config(kl_beta=-1.0))


def test_kl_shaping_alone_leaves_the_generator_exactly_where_it_started(tiny):
    # a constant reward with a batch-mean baseline carries no signal, and k = log p - log p_ref is
    # exactly 0 while θ = θ_ref: the generator must not move (Adam would turn rounding noise in k
    # into full-size steps)
    cfg = tiny_config(discriminator="constant", adv_steps=4, kl_beta=1.0, reward="terminal", baseline="mean",
                      d_pretrain_steps=0)
    a = make("reinforce", tiny, cfg, seed=0)
    while a.iteration < a.adv_start:
        a.train_iteration()
    start = copy.deepcopy(a.generator)
    for _ in range(4):
        assert a.train_iteration()["kl"] == 0.0
    assert gen_state_equal(a.generator, start)


def test_kl_penalty_reaches_the_returns_with_its_sign_by_hand(tiny):
    """One REINFORCE step on a fixed batch with a constant reward r = σ(0) at the last token, no
    baseline, γ = 1 and a reference that differs from θ: R_t = r - β Σ_{s>=t} (log p_θ - log p_ref)(x_s),
    L_G = -Σ R log p_θ / Σ L_i. A sign error (a KL bonus) or a penalty that never reached R would
    leave the two KL tests above passing."""
    beta = 0.5
    cfg = tiny_config(discriminator="constant", adv_steps=2, kl_beta=beta, reward="terminal", baseline="none",
                      transform="prob", gamma=1.0, d_pretrain_steps=0)
    a = make("reinforce", tiny, cfg, seed=0)
    while a.iteration < a.adv_start:
        a.train_iteration()
    a.kl_reference = copy.deepcopy(a.generator)  # the phase's start would take θ itself
    with torch.no_grad():
        a.kl_reference.out.bias.add_(torch.randn(V, generator=torch.Generator().manual_seed(1)))
    tokens = torch.randint(0, V, (4, L), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([L, L, L, L])
    fixed_samples(a, tokens, lengths)
    with torch.no_grad():
        lp, ref = a.generator.log_probs(tokens), a.kl_reference.log_probs(tokens)
    penalty = -beta * (lp - ref)
    R = 0.5 + penalty.flip(1).cumsum(1).flip(1)  # r + Σ_{s>=t} penalty_s
    want = float(-(R * lp).sum() / lengths.sum())
    stats = a.generator_step()
    assert stats["g_loss"] == pytest.approx(want, rel=1e-5)
    assert stats["kl"] == pytest.approx(float((lp - ref).mean()), rel=1e-5) and stats["kl"] != 0


def test_the_gpus_mle_pass_with_deferred_checks_trains_as_the_checked_one(tiny):
    """Off the CPU an MLE pass sums its losses and gradient-norm checks on the device and reads
    them once (``_mle_pass_deferred``); run here on the CPU, it reaches the checked pass's
    weights and loss, and a non-finite gradient norm still stops the run with FloatingPointError."""
    cfg = dict(mle_epochs=2, batch_size=16)
    a, b = agents.make("mle", tiny, cfg, seed=0), agents.make("mle", tiny, cfg, seed=0)
    batches = [torch.arange(i, i + 16) for i in range(0, 64, 16)]
    sa, sb = a._mle_pass(batches), b._mle_pass_deferred(batches)
    assert sa["g_loss"] == pytest.approx(sb["g_loss"], rel=1e-6)
    for (k, v), w in zip(a._generator.state_dict().items(), b._generator.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    with torch.no_grad():
        b._generator.out.weight[0, 0] = float("inf")  # the loss may stay finite; the gradient norm does not
    with pytest.raises(FloatingPointError, match="non-finite|became"):
        b._mle_pass_deferred(batches)


# ---------------------------------------------------------------------- MaskGAN's actor-critic, ScratchGAN's pieces
class PrefixTableScorer(TableScorer):
    """A fixed probabilistic scorer with per-prefix scores: the logit of prefix x_{≤t} of row i
    is ``logits[i, t]``."""

    supports_prefixes = True

    def score_prefixes(self, tokens, lengths=None):
        return self.logits[: tokens.shape[0], : tokens.shape[1]].clone()

    def score(self, tokens, lengths=None):
        return self.logits[: tokens.shape[0], tokens.shape[1] - 1].clone()


class PositionCritic(torch.nn.Module):
    """A critic whose output the test sets: V_t = v[t] in every row, whatever the state."""

    def __init__(self, values):
        super().__init__()
        self.v = torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))

    def forward(self, h):
        return self.v[: h.shape[1]].expand(h.shape[0], -1)


def fixed_samples(agent, tokens, lengths):
    """Make the agent's generator 'sample' the given batch."""
    agent.generator.sample_with_lengths = lambda n, temperature=1.0, generator=None: (tokens.clone(), lengths.clone())


def test_maskgan_step_uses_the_clipped_critic_advantage_and_the_critic_regresses_the_return(tiny):
    """One generator step on a fixed batch, fixed prefix logits s and a critic V_t = v_t, against
    r = log σ(s), R_t = Σ_s γ^{s-t} r_s, A = clip(R - V, ±c), L_G = -Σ A log π / Σ L_i,
    L_V = Σ (R - V)² / Σ L_i and its gradient dL_V/dv_t = -2 Σ_i (R_{i,t} - v_t) / Σ L_i."""
    gamma, clip, lr = 0.5, 1.0, 0.1
    N = 3
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0, -2.0, 0.0, 3.0, -0.5],
                           [-1.5, 0.5, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0],
                           [0.0, -3.0, 2.5, -1.0, 0.3, 9.0, 9.0, 9.0]])
    lengths = torch.tensor([L, 3, 5])
    tokens = torch.randint(0, V, (N, L), generator=torch.Generator().manual_seed(4))
    values = [-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0]
    a = make("maskgan", tiny, tiny_config(discriminator=PrefixTableScorer(logits), mle_epochs=0, batch_size=N,
                                          gamma=gamma, adv_clip=clip, critic_warmup=0), seed=0)
    a.critic = PositionCritic(values)
    a.critic_opt = torch.optim.SGD(a.critic.parameters(), lr=lr)
    fixed_samples(a, tokens, lengths)
    lp = slow_log_probs(a.generator, tokens)  # log π(x_t | x_<t) before the step
    # the hand computation, one entry at a time
    total = sum(lengths.tolist())
    g_loss = v_loss = adv = 0.0
    grad = [0.0] * L
    n_clipped = n_free = 0
    for i in range(N):
        n = int(lengths[i])
        r = [math.log(1 / (1 + math.exp(-float(logits[i, t])))) for t in range(n)]
        for t in range(n):
            R = sum(gamma ** (s - t) * r[s] for s in range(t, n))
            A = R - values[t]
            if abs(A) > clip:
                n_clipped += 1
                A = clip if A > 0 else -clip
            else:
                n_free += 1
            g_loss -= A * float(lp[i, t]) / total
            adv += A / total
            v_loss += (R - values[t]) ** 2 / total
            grad[t] += -2 * (R - values[t]) / total
    assert n_clipped >= 5 and n_free >= 5  # the clip matters for this batch, and not everywhere
    stats = a.generator_step()
    assert stats["g_loss"] == pytest.approx(g_loss, rel=1e-5)
    assert stats["advantage"] == pytest.approx(adv, rel=1e-5)
    assert stats["critic_loss"] == pytest.approx(v_loss, rel=1e-5)
    # the critic took one SGD step on L_V: v_t <- v_t - lr dL_V/dv_t
    want = [v - lr * g for v, g in zip(values, grad)]
    torch.testing.assert_close(a.critic.v.detach(), torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_ema_baseline_follows_its_documented_rule(tiny):
    """baseline='ema': b_k = d·b_{k-1} + (1-d)·(mean of R over the valid tokens), b_0 = 0, updated
    before use (ScratchGAN's ewma_reward), and the same rule after a resume."""
    d = 0.8
    a = make("scratchgan", tiny, tiny_config(discriminator=PrefixTableScorer(torch.zeros(4, L)), baseline_decay=d), seed=0)
    assert a.config.baseline == "ema"
    R1 = torch.tensor([[1.0, 2.0, 3.0], [5.0, 100.0, 100.0]])
    m1 = torch.tensor([[True, True, True], [True, False, False]])  # mean over valid tokens: 11 / 4
    R2 = torch.tensor([[-2.0, 0.0, 4.0], [6.0, 7.0, -3.0]])
    m2 = torch.ones(2, 3, dtype=torch.bool)  # mean 2
    b1 = a.baseline(R1, m1)
    assert b1 == pytest.approx(0.2 * 2.75)  # 0.8 · 0 + 0.2 · 2.75 = 0.55
    b2 = a.baseline(R2, m2)
    assert b2 == pytest.approx(0.8 * 0.55 + 0.2 * 2.0)  # 0.84
    b = make("scratchgan", tiny, tiny_config(discriminator=PrefixTableScorer(torch.zeros(4, L)), baseline_decay=d), seed=0)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.baseline(R1, m1) == pytest.approx(0.8 * 0.84 + 0.2 * 2.75)  # 1.222


def test_scratchgan_dense_reward_is_two_d_minus_one(tiny):
    """ScratchGAN's reward r_t = 2 D(x_{≤t}) - 1 (transform centered_prob): with logits ±log 3
    and 0, D = 3/4, 1/4, 1/2 and r = 1/2, -1/2, 0; the returns discount it with γ."""
    s = math.log(3.0)
    logits = torch.tensor([[s, -s, 0.0, s, s, -s, 0.0, 0.0],
                           [-s, -s, s, 0.0, 0.0, 0.0, 0.0, 0.0]])
    r = [[0.5, -0.5, 0.0, 0.5, 0.5, -0.5, 0.0, 0.0], [-0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]]
    gamma = 0.5
    a = make("scratchgan", tiny, tiny_config(discriminator=PrefixTableScorer(logits), gamma=gamma), seed=0)
    assert a.config.transform == "centered_prob"
    tokens = torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([L, 4])
    torch.testing.assert_close(a.reward.sequence_rewards(tokens, lengths),
                               torch.tensor([r[0], r[1][:4] + [0.0] * 4]), rtol=0, atol=1e-6)
    R = a.returns(tokens, lengths)
    for i in range(2):
        for t in range(L):
            want = sum(gamma ** (u - t) * r[i][u] for u in range(t, int(lengths[i]))) if t < lengths[i] else 0.0
            assert float(R[i, t]) == pytest.approx(want, abs=1e-6)


def test_a_training_temperature_other_than_1_is_refused():
    """Samples at temperature tau with the score function of log p at 1 is a biased gradient (and
    MaliGAN's optimal-D weight p_data / p_1 the wrong one); no recipe sets it, so it is refused."""
    from agents.config import ConfigError, resolve

    for name in ("seqgan", "maligan-mixed", "maskgan"):
        with pytest.raises(ConfigError, match=r"temperature = 0\.8 is invalid: expected 1\.0 \(the losses use untempered"):
            resolve(agents.preset(name), "smoke", explicit={"temperature": 0.8})


def test_reinforce_adapts_beta_by_the_tokens_of_the_batch(tiny):
    """R2: after the first adversarial step (KL 0, so e = -0.2) over 32 sequences of 8 tokens
    (n = 256 = 2 horizons of 100 + 56), β = 0.5 · 0.8² · (1 - 0.2 · 0.56)."""
    cfg = tiny_config(discriminator="oracle", adv_steps=3, kl_beta=0.5, kl_target=0.01, kl_horizon=100,
                      reward="terminal", baseline="mean")
    a = make("reinforce", tiny, cfg, seed=3)
    while a.iteration < a.adv_start:
        a.train_iteration()
    a.train_iteration()
    second = a.train_iteration()
    assert second["kl_beta"] == pytest.approx(0.5 * 0.8 ** 2 * (1 - 0.2 * 0.56), rel=1e-9)


@pytest.mark.parametrize("baseline", ["mean", "none"])
def test_mixed_maligan_step_is_the_hand_loss(tiny, baseline):
    """A1-A4: L = -[Σ_{ij} Σ_{t<N} log p(x^{ij}_t) + Σ_{ij} (w_ij - b) Σ_{t>=N} log p(x^{ij}_t)] / (B m T),
    w_ij = m r_ij / Σ_k r_ik per prefix group i, r = exp(logit); b = 1 (mean) or 0 (none)."""
    B, m, N = 2, 3, 3
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -2.5])
    a = make("maligan-mixed", tiny, tiny_config(discriminator=TableScorer(logits), mle_epochs=0, d_pretrain_steps=0,
                                                batch_size=B, mixed_m=m, baseline=baseline), seed=0)
    tokens = torch.randint(0, V, (B * m, L), generator=torch.Generator().manual_seed(0))
    lengths = torch.full((B * m,), L)
    clamped = (torch.arange(L) < N).expand(B * m, L).clone()
    a.clamp_length = lambda: N
    a.mixed_batch = lambda real, real_len, n_, m_=None: (tokens.clone(), lengths.clone(), clamped.clone())
    with torch.no_grad():
        lp = a.generator.log_probs(tokens)
    total = 0.0
    for i in range(B):
        r = [math.exp(float(s)) for s in logits[i * m:(i + 1) * m]]
        for j in range(m):
            w = m * r[j] / sum(r)
            b = 1.0 if baseline == "mean" else 0.0
            row = lp[i * m + j]
            total += float(row[:N].sum()) + (w - b) * float(row[N:].sum())
    stats = a.generator_step()
    assert stats["g_loss"] == pytest.approx(-total / (B * m * L), rel=1e-5)


def test_maskgan_critic_reads_the_state_before_each_token(tiny):
    """AC1: V_t = V_φ(h_t) with h_t the state after x_<t (the docstring): the critic's input at t
    must not change when x_t changes, and must at t + 1."""
    a = make("maskgan", tiny, tiny_config(discriminator="oracle", mle_epochs=0, critic_warmup=0, batch_size=4), seed=0)

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def forward(self, h):
            self.seen.append(h.detach().clone())
            return h.sum(-1) * 0 + self.w

    a.critic = Recorder()
    a.critic_opt = torch.optim.SGD(a.critic.parameters(), lr=0.0)
    x = torch.randint(0, V, (4, L), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 3] = (y[:, 3] + 1) % V
    for tokens in (x, y):
        a.generator.sample_with_lengths = lambda n, temperature=1.0, generator=None, t=tokens: (t.clone(), torch.full((4,), L))
        a.generator_step(actor=False)
    hx, hy = a.critic.seen
    assert torch.equal(hx[:, :4], hy[:, :4]) and not torch.equal(hx[:, 4], hy[:, 4])


@pytest.mark.parametrize("reward", ["terminal", "mc"])
def test_a_no_information_control_with_a_mean_baseline_does_not_move_the_generator(tiny, reward):
    """Every return is log σ(0) = log ½ under the constant discriminator, so every advantage is 0.
    The batch mean was taken in float32, an ulp off, and Adam turned the ±1e-7 advantages into
    steps of 1e-4: the study's log controls drifted from their start by up to 0.02 nats."""
    a = make("reinforce", tiny, tiny_config(discriminator="constant", transform="log", reward=reward, baseline="mean",
                                            mle_epochs=0, d_pretrain_steps=0, adv_steps=3, batch_size=64), seed=0)
    before = copy.deepcopy(a.generator.state_dict())
    for _ in range(3):
        a.train_iteration()
    assert all(torch.equal(v, before[k]) for k, v in a.generator.state_dict().items())


def rows(t: torch.Tensor) -> set:
    return {tuple(r.tolist()) for r in t}


def test_maligan_rising_baseline_advances_with_each_generator_update(tiny):
    """A3: baseline='rise' is b = min(1, k / baseline_rise) after k generator updates; the count k
    must grow with every update (else b stays 0 for the whole run)."""
    a = make("maligan", tiny, tiny_config(discriminator=TableScorer(torch.zeros(32)), baseline="rise", baseline_rise=2,
                                          adv_steps=4), seed=0)
    while a.iteration < a.adv_start:
        a.train_iteration()
    assert [a.train_iteration()["baseline"] for _ in range(4)] == [0.0, 0.5, 1.0, 1.0]
    assert a.g_updates == 4


def test_the_weak_discriminator_streak_restarts_after_an_informative_evaluation():
    """A4: WEAK_ROUNDS near-chance evaluations *in a row* warn; one informative evaluation restarts the count."""
    from agents.adversarial import WEAK_ROUNDS, weak_streak

    assert WEAK_ROUNDS == 3
    s = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: never 3 in a row
        for acc in (0.5, 0.52, 0.9, 0.49, 0.5, 0.8, 0.5):
            s = weak_streak(s, acc, "x")
    assert s == 1
    with pytest.warns(RuntimeWarning, match="stayed within"):
        for acc in (0.5, 0.5):
            s = weak_streak(s, acc, "x")
    assert s == 3


def test_maskgan_without_advantage_clipping_uses_the_whole_advantage(tiny):
    """A5: adv_clip = 0 means no clipping (the field's help, MaskGAN's advantage_clipping off): A = R - V,
    not clip(R - V, -0, 0) = 0, which stops the actor."""
    gamma = 1.0
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0, -2.0, 0.0, 3.0, -0.5],
                           [-1.5, 0.5, 1.0, -4.0, 9.0, 9.0, 9.0, 9.0]])
    lengths = torch.tensor([L, 4])
    tokens = torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(4))
    values = [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0]
    a = make("maskgan", tiny, tiny_config(discriminator=PrefixTableScorer(logits), mle_epochs=0, batch_size=2,
                                          gamma=gamma, adv_clip=0.0, critic_warmup=0), seed=0)
    a.critic = PositionCritic(values)
    a.critic_opt = torch.optim.SGD(a.critic.parameters(), lr=0.0)
    fixed_samples(a, tokens, lengths)
    with torch.no_grad():
        lp = a.generator.log_probs(tokens)
    total = int(lengths.sum())
    adv = g_loss = 0.0
    for i in range(2):
        n = int(lengths[i])
        r = [math.log(1 / (1 + math.exp(-float(logits[i, t])))) for t in range(n)]
        for t in range(n):
            A = sum(gamma ** (s - t) * r[s] for s in range(t, n)) - values[t]
            adv += A / total
            g_loss -= A * float(lp[i, t]) / total
    assert abs(adv) > 0.5  # far from the 0 that clip(., -0, 0) gives
    stats = a.generator_step()
    assert stats["advantage"] == pytest.approx(adv, rel=1e-5)
    assert stats["g_loss"] == pytest.approx(g_loss, rel=1e-5)


def test_mle_early_stopping_restores_the_best_generator_when_the_epochs_run_out_first(tiny):
    """A6: with a patience longer than the run, the last epoch still restores the best validation
    iteration's generator (the module docstring: 'also when the epochs run out first')."""
    cfg = dict(mle_epochs=6, batch_size=16, mle_lr=0.05, hidden_dim=64, val_size=100, patience=50)
    a = agents.make("mle", tiny, cfg, seed=0)
    vals, snapshots = [], []
    while a.iteration < a.total_iterations:
        vals.append(a.train_iteration()["nll_val"])
        snapshots.append(copy.deepcopy(a.generator.state_dict()))
    best = min(range(len(vals)), key=vals.__getitem__)
    assert best < len(vals) - 1, "this over-fitting configuration has its best epoch before the last"
    assert a.iteration == 6 and a.stopped and a.best_iteration == best + 1
    assert all(torch.equal(x, snapshots[best][k]) for k, x in a.generator.state_dict().items())


def test_the_mle_validation_split_is_the_last_training_rows_and_never_trained_on(tiny):
    """A7: the validation split is the last val_size sequences of data.train, disjoint from the rows
    the agent trains on (a split taken from the rows it trains on measures nothing)."""
    a = agents.make("mle", tiny, dict(mle_epochs=1, val_size=100, patience=1), seed=0)
    # (rows, not contents: this low-entropy oracle repeats some sequences)
    assert torch.equal(a.val_tokens, tiny.train[-100:]) and torch.equal(a.train_tokens, tiny.train[:400])


def test_an_adversarial_step_runs_d_steps_discriminator_rounds(tiny):
    """A8: each adversarial step trains the discriminator d_steps rounds (SeqGAN's 5, MaskGAN's 2);
    every test of the suite uses d_steps=1, so one round per step passed them all."""
    a = make("seqgan", tiny, tiny_config(mle_epochs=0, d_pretrain_steps=0, adv_steps=1, d_steps=3, d_samples=16), seed=0)
    calls = []
    step = a.d_trainer.step
    a.d_trainer.step = lambda *args, **kwargs: (calls.append(len(args[0])), step(*args, **kwargs))[1]
    assert a.train_iteration()["phase"] == "adv"
    assert calls == [16, 16, 16]
