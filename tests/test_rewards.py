"""Rewards: the batched MC reward against a slow nested-loop reference, no mixing across
sequences or steps, transforms against hand computations, and refusals."""
from __future__ import annotations

import math

import pytest
import torch

from textgym import OracleScorer, TokenVecEnv
from textgym.rewards import TRANSFORMS, DenseReward, MCReward, TerminalReward, make_reward, maligan_weights


class FillPolicy:
    """A deterministic rollout policy: completes every prefix with token ``fill``."""

    def __init__(self, fill: int) -> None:
        self.fill = fill

    def rollout(self, tokens, prefix_lengths, *, temperature=1.0, generator=None):
        keep = torch.arange(tokens.shape[1], device=tokens.device) < prefix_lengths[:, None]
        return torch.where(keep, tokens, torch.full_like(tokens, self.fill))


class MeanIdScorer:
    """A plain score that identifies a sequence: mean token id."""

    is_probabilistic = False
    vocab_size = 100

    def score(self, tokens, lengths=None):
        return tokens.float().mean(1)


def test_mc_rewards_never_mix_sequences_or_steps(device):
    # With a deterministic completion, Q(Y_1:t) for sequence i is known exactly:
    # (sum of its first t tokens + (T - t) * fill) / T. A [rollout, T, B] -> (B, T) reshape
    # without transpose (a bug of public code) scrambles this matrix.
    N, T, fill = 5, 7, 3
    tokens = torch.randint(0, 100, (N, T), generator=torch.Generator().manual_seed(0))
    reward = MCReward(MeanIdScorer(), "identity", rollout_policy=FillPolicy(fill), n_rollouts=4).bind(100, None, 100)
    got = reward.sequence_rewards(tokens.to(device), torch.full((N,), T, device=device))
    assert got.device.type == device.type
    got = got.cpu()
    expected = torch.empty(N, T)
    for i in range(N):
        for t in range(1, T + 1):
            expected[i, t - 1] = (tokens[i, :t].sum() + (T - t) * fill) / T
    torch.testing.assert_close(got, expected)


def test_mc_step_path_equals_sequence_path_for_deterministic_policy(device):
    N, T = 4, 6
    reward = MCReward(MeanIdScorer(), "identity", rollout_policy=FillPolicy(9), n_rollouts=2)

    class Env(TokenVecEnv):
        pass

    from textgym.data import OracleData
    from textgym.oracle import OracleLSTM

    data = OracleData(OracleLSTM(vocab_size=100, max_length=T, seed=0), max_length=T, n_train=8, n_test=8)
    venv = Env(N, data=data, reward=reward, device=device)
    venv.reset(seed=0)
    actions = torch.randint(0, 100, (T, N), generator=torch.Generator().manual_seed(1)).to(device)
    step_rewards = torch.stack([venv.step(a)[1] for a in actions], 1)
    assert step_rewards.device.type == device.type
    torch.testing.assert_close(step_rewards, reward.sequence_rewards(actions.T.contiguous(), torch.full((N,), T, device=device)))


def slow_mc_rewards(oracle, scorer, tokens, n, seed):
    """The straightforward nested loop of public SeqGAN code: for each rollout, for each prefix
    length, complete every sequence and score it; the last step scores the sequence itself.
    Returns the individual rollout scores, (n, N, T)."""
    g = torch.Generator().manual_seed(seed)
    N, T = tokens.shape
    draws = torch.zeros(n, N, T)
    for k in range(n):
        for t in range(1, T):
            full = oracle.rollout(tokens, torch.full((N,), t), generator=g)
            draws[k, :, t - 1] = scorer.score(full)
        draws[k, :, T - 1] = scorer.score(tokens)
    return draws


def test_batched_mc_agrees_with_slow_reference_statistically(small_oracle_data, device):
    """The batched MC reward on ``device`` against the slow loop on the CPU."""
    oracle = small_oracle_data.oracle
    scorer = OracleScorer(oracle)
    tokens = small_oracle_data.test[:6]
    n = 64
    on_device = small_oracle_data.oracle_on(device)
    reward = MCReward(OracleScorer(on_device), rollout_policy=on_device, n_rollouts=n).bind(50, None, 50)
    fast = reward.sequence_rewards(tokens.to(device), torch.full((6,), 6, device=device),
                                   generator=torch.Generator(device=device).manual_seed(0))
    assert fast.device.type == device.type
    fast = fast.cpu()
    draws = slow_mc_rewards(oracle, scorer, tokens, n, seed=1)
    slow = draws.mean(0)
    # Both are means of n independent draws: their difference has sd sigma * sqrt(2 / n).
    se = draws.std(0)[:, :-1] * math.sqrt(2 / n)
    z = (fast - slow)[:, :-1] / se
    assert z.abs().max() < 5, z
    assert z.abs().mean() < 1.5  # about 0.8 for two unbiased estimates
    # the last step is exact: the finished sequence's own score (by the scorer the reward used)
    torch.testing.assert_close(fast[:, -1], OracleScorer(on_device).score(tokens.to(device)).cpu())
    torch.testing.assert_close(slow[:, -1], scorer.score(tokens))


def test_oracle_scores_completions_with_each_shared_prefix_once(small_oracle_data, device):
    """score_completions (prefix scored once per group) equals scoring every row in full, with
    and without sequences that end early, and refuses groups that do not share the prefix."""
    from textgym import scorers

    oracle = small_oracle_data.oracle_on(device)
    scorer = OracleScorer(oracle)
    M, n, T = 12, 5, 6
    g = torch.Generator(device=device).manual_seed(2)
    prefixes = small_oracle_data.test[:M].to(device)
    plen = torch.randint(0, T + 1, (M,), generator=g, device=device)
    full = oracle.rollout(prefixes.repeat_interleave(n, 0), plen.repeat_interleave(n), generator=g)
    assert full.device.type == device.type
    for lengths in (None, torch.randint(1, T + 1, (M,), generator=g, device=device).repeat_interleave(n)):
        if lengths is not None:  # rows that end inside their prefix end at the same place
            lengths = torch.where(lengths > plen.repeat_interleave(n), lengths,
                                  lengths.view(M, n)[:, :1].expand(M, n).reshape(-1))
        want = scorer.score(full, lengths)
        got = scorers.score_completions(scorer, full, lengths, plen, n)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    broken = full.clone()
    broken[1, 0] = (broken[0, 0] + 1) % 50
    with pytest.raises(ValueError, match="do not share their prefix"):
        scorers.score_completions(scorer, broken, None, torch.full((M,), 2, device=device), n)
    with pytest.raises(ValueError, match="groups of"):
        scorers.score_completions(scorer, full[:-1], None, plen, n)


def test_oracle_log_probs_score_only_the_asked_positions(small_oracle_data, device):
    oracle = small_oracle_data.oracle_on(device)
    tokens = small_oracle_data.test[:40].to(device)
    g = torch.Generator(device=device).manual_seed(0)
    start = torch.randint(0, 7, (40,), generator=g, device=device)
    stop = torch.randint(0, 7, (40,), generator=g, device=device)
    part = oracle.log_probs(tokens, start=start, stop=stop)
    assert part.device.type == device.type
    pos = torch.arange(6, device=device)
    inside = (pos >= start[:, None]) & (pos < stop[:, None])
    assert torch.equal(part[~inside], torch.zeros(int((~inside).sum()), device=device))
    torch.testing.assert_close(part[inside], oracle.log_probs(tokens)[inside], rtol=0, atol=1e-5)


def test_mc_rollouts_stop_at_eos():
    class EosPolicy:
        def rollout(self, tokens, prefix_lengths, *, temperature=1.0, generator=None):
            out = tokens.clone()
            for i, p in enumerate(prefix_lengths.tolist()):
                out[i, p:] = 5
                if p < tokens.shape[1]:
                    out[i, p] = 0  # <eos> right after the prefix
            return out

    seen = []

    class Recorder(MeanIdScorer):
        def score(self, tokens, lengths=None):
            seen.append((tokens.clone(), lengths.clone()))
            return torch.zeros(tokens.shape[0])

    r = MCReward(Recorder(), "identity", rollout_policy=EosPolicy(), n_rollouts=1).bind(100, 0, 100)
    r.values(torch.tensor([[7, 8, 9, 9]]), torch.tensor([2]))
    tokens, lengths = seen[0]
    assert tokens.tolist() == [[7, 8, 0, 100]] and lengths.tolist() == [3]


def test_transforms_match_hand_computation():
    s = torch.tensor([-2.0, 0.0, 3.0])
    D = 1 / (1 + torch.exp(-s))
    torch.testing.assert_close(TRANSFORMS["prob"](s), D)
    torch.testing.assert_close(TRANSFORMS["log"](s), torch.log(D))
    torch.testing.assert_close(TRANSFORMS["logit"](s), s)
    r = D / (1 - D)
    torch.testing.assert_close(TRANSFORMS["maligan"](s), 3 * r / r.sum())
    torch.testing.assert_close(TRANSFORMS["identity"](s), s)


def _maligan_reference(logits: torch.Tensor) -> torch.Tensor:
    """m · exp(s - max) / Σ exp(s - max) in float64, one row at a time (the slow obvious way)."""
    s = [float(v) for v in logits.double()]
    top = max(s)
    e = [math.exp(v - top) for v in s]
    return torch.tensor([len(s) * v / sum(e) for v in e], dtype=torch.float64)


@pytest.mark.parametrize("logits", [
    [-102.0, 84.0, 80.0, 83.5, 0.0, -30.0, 30.0, 31.0],   # the optimal discriminator's range
    [-102.0, -95.0, -60.0, -31.0, -40.0],                  # every logit below -30
    [5.0, 5.0, 5.0],                                       # equal logits: weights 1
])
def test_maligan_weights_are_exact_for_any_finite_logits(logits):
    s = torch.tensor(logits)
    w = maligan_weights(s)
    ref = _maligan_reference(s)
    assert w.dtype == s.dtype and torch.isfinite(w).all()
    torch.testing.assert_close(w.double(), ref, rtol=1e-5, atol=1e-12)
    assert w.sum().item() == pytest.approx(len(logits), rel=1e-5)
    if max(logits) < -30:
        assert not torch.allclose(w, torch.ones_like(w))  # no clamp flattens them to 1


def test_maligan_weights_normalize_each_row_of_a_batch():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 7, generator=g) * 60 - 20
    w = maligan_weights(s)
    assert w.shape == (5, 7)
    for i in range(5):
        torch.testing.assert_close(w[i], maligan_weights(s[i]), rtol=0, atol=0)
        torch.testing.assert_close(w[i].double(), _maligan_reference(s[i]), rtol=1e-5, atol=1e-12)


def test_terminal_maligan_normalizes_over_the_finished_batch(small_oracle_data, toy_scorer, device):
    venv = TokenVecEnv(3, data=small_oracle_data, discriminator=toy_scorer(50), transform="maligan", device=device)
    venv.reset(options={"prefix": [[1] * 5, [20] * 5, [40] * 5]})
    _, r, term, _, _ = venv.step(torch.tensor([1, 20, 40], device=device))
    assert r.device.type == device.type
    logits = torch.tensor([1, 20, 40]) / 50 * 4 - 2
    ratio = torch.exp(logits)
    torch.testing.assert_close(r.cpu(), 3 * ratio / ratio.sum())


def test_refusals(small_oracle_data, toy_scorer):
    oracle_scorer = OracleScorer(small_oracle_data.oracle)
    for name in ("prob", "log", "logit", "maligan"):
        with pytest.raises(ValueError, match="needs a probabilistic scorer"):
            TerminalReward(oracle_scorer, name)
    with pytest.raises(ValueError, match="reward='terminal' only"):
        MCReward(toy_scorer(50), "maligan")
    with pytest.raises(ValueError, match="unknown reward transform 'sqrt'"):
        TerminalReward(toy_scorer(50), "sqrt")
    with pytest.raises(ValueError, match="unknown reward 'sparse'"):
        make_reward("sparse", toy_scorer(50))

    class WholeOnly:
        vocab_size, is_probabilistic, supports_prefixes = 50, True, False

    with pytest.raises(ValueError, match="per-prefix scores"):
        DenseReward(WholeOnly())
    with pytest.raises(ValueError, match="rollout policy"):
        MCReward(toy_scorer(50)).values(torch.zeros(1, 3, dtype=torch.long), torch.tensor([1]))


def test_default_transforms(small_oracle_data, toy_scorer):
    assert TerminalReward(OracleScorer(small_oracle_data.oracle)).transform.name == "identity"
    assert TerminalReward(toy_scorer(50)).transform.name == "prob"


def test_dense_reward_is_per_prefix_score(small_oracle_data, device):
    """The env's dense rewards on ``device`` against the scores of its oracle (the shared one on
    the CPU, else its copy on ``device``)."""
    venv = TokenVecEnv(4, data=small_oracle_data, reward="dense", device=device)
    oracle = venv.oracle
    venv.reset(seed=0)
    tokens = small_oracle_data.test[:4]
    on_device = tokens.to(device)
    rewards = torch.stack([venv.step(on_device[:, t])[1] for t in range(6)], 1)
    assert rewards.device.type == device.type
    rewards = rewards.cpu()
    # CUDA: the env scores prefixes of 1..6 tokens, the reference whole sequences: other kernels
    tol = {} if device.type == "cpu" else dict(rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(rewards, oracle.log_probs(tokens).cpu(), **tol)
    torch.testing.assert_close(rewards.mean(1), OracleScorer(oracle).score(tokens).cpu(), **tol)
    dense = DenseReward(OracleScorer(venv.oracle)).bind(50, None, 50)
    torch.testing.assert_close(dense.sequence_rewards(on_device, torch.full((4,), 6, device=device)).cpu(), rewards)


def test_a_plain_callable_scorer_follows_the_protocol(small_oracle_data, device):
    """The Discriminator protocol asks for ``__call__`` only: no ``forward`` or ``score`` needed."""

    class LengthScorer:
        is_probabilistic = False

        def __init__(self, vocab_size):
            self.vocab_size = vocab_size

        def __call__(self, tokens, lengths=None):
            return lengths.float() if lengths is not None else torch.full((tokens.shape[0],), float(tokens.shape[1]))

    L = small_oracle_data.max_length
    env = TokenVecEnv(3, data=small_oracle_data, discriminator=LengthScorer(small_oracle_data.vocab_size), device=device)
    env.reset(seed=0)
    rewards = [env.step(torch.ones(3, dtype=torch.long, device=device))[1] for _ in range(L)]
    assert rewards[-1].device.type == device.type
    assert torch.equal(rewards[-1].cpu(), torch.full((3,), float(L))) and all(bool((r == 0).all()) for r in rewards[:-1])


def test_a_module_s_own_scoring_methods_run_in_eval_mode():
    """A user module in training mode with its own ``score_prefixes``/``score_completions``
    (the protocol's optional methods) scores with dropout off, and its mode is restored."""
    from textgym import scorers

    class DropoutScorer(torch.nn.Module):
        is_probabilistic = True

        def __init__(self):
            super().__init__()
            self.vocab_size, self.emb, self.drop = 50, torch.nn.Embedding(51, 4), torch.nn.Dropout(0.5)
            self.seen = []

        def score_prefixes(self, tokens, lengths=None):
            self.seen.append((self.training, torch.is_grad_enabled()))
            return self.drop(self.emb(tokens)).sum(-1).cumsum(1)

        def score_completions(self, tokens, lengths, prefix_lengths, n):
            return self.score_prefixes(tokens, lengths)[:, -1]

        def forward(self, tokens, lengths=None):
            return self.score_prefixes(tokens, lengths)[:, -1]

    torch.manual_seed(0)
    d, x = DropoutScorer().train(), torch.randint(50, (4, 6))
    x[1, :2], x[3, :3] = x[0, :2], x[2, :3]  # two groups of 2 completions, of prefixes of 2 and 3 tokens
    a, b = scorers.score_prefixes(d, x), scorers.score_prefixes(d, x)
    c = scorers.score_completions(d, x, None, torch.tensor([2, 3]), 2)
    assert torch.equal(a, b) and torch.equal(c, a[:, -1])
    assert d.seen == [(False, False)] * 3 and d.training


def test_mc_reward_with_the_generator_and_the_cnn_on_the_device(device):
    """SeqGAN's reward where its tensors live: the generator's rollouts and the CNN's scores on
    ``device``; the last step's reward is D(Y) of the sequence itself."""
    from agents.generator import Generator
    from discriminators import CNNDiscriminator

    gen = Generator(50, 6, seed=0).to(device)
    d = CNNDiscriminator(50, 6, size="small").to(device)
    reward = MCReward(d, "prob", rollout_policy=gen, n_rollouts=3).bind(50, None, 50)
    tokens = gen.sample(4, generator=torch.Generator(device=device).manual_seed(0))
    r = reward.sequence_rewards(tokens, torch.full((4,), 6, device=device), torch.Generator(device=device).manual_seed(1))
    assert r.shape == (4, 6) and r.device.type == device.type and bool(((r >= 0) & (r <= 1)).all())
    torch.testing.assert_close(r[:, -1], torch.sigmoid(d.score(tokens)))


@pytest.mark.device
def test_a_rollout_policy_on_another_device_than_the_env_draws_from_the_env_generator(device):
    """An MC reward of a CPU env whose rollout policy lives on ``device`` (an SB3 policy on CUDA
    next to an env on the CPU): the policy draws from a generator on its own device seeded by one
    draw of the env's (torch refuses a CPU generator for CUDA draws), so the same seed gives the
    same rewards, on the env's device, and the env's generator advances."""
    from agents.generator import Generator
    from discriminators import CNNDiscriminator
    from textgym.sampling import generator_on

    gen = Generator(30, 6, eos_id=None, seed=0).to(device)
    reward = MCReward(CNNDiscriminator(30, 6, size="small"), "prob", rollout_policy=gen, n_rollouts=2).bind(30, None, 30)
    tokens, lengths = torch.randint(30, (3, 6), generator=torch.Generator().manual_seed(0)), torch.full((3,), 6)
    rngs = [torch.Generator().manual_seed(5) for _ in range(2)]
    out = [reward.sequence_rewards(tokens, lengths, rng) for rng in rngs]
    torch.testing.assert_close(out[0], out[1], atol=0, rtol=0)
    assert out[0].device.type == "cpu" and out[0].shape == (3, 6)  # (N, T): a reward per token
    assert not torch.equal(rngs[0].get_state(), torch.Generator().manual_seed(5).get_state())
    same = torch.Generator(device)
    assert generator_on(same, device) is same and generator_on(None, device) is None
    # the oracle and the class-conditional generator as rollout policies take an env's generator too
    from agents.conditional import ConditionalGenerator
    from textgym.oracle import OracleLSTM

    oracle = OracleLSTM(30, 8, 8, 6, seed=0).to(device)
    conditional = ConditionalGenerator(30, 6, 2, seed=0).to(device)
    prefixes = torch.full((3,), 2)
    for complete in (lambda rng: oracle.rollout(tokens, prefixes, generator=rng),
                     lambda rng: conditional.rollout(tokens, prefixes, generator=rng, classes=torch.tensor([0, 1, 0]))):
        done = [complete(torch.Generator().manual_seed(5)) for _ in range(2)]
        assert torch.equal(done[0], done[1]) and torch.equal(done[0][:, :2].cpu(), tokens[:, :2])


@pytest.mark.device
def test_the_captured_mc_reward_equals_the_eager_one(device):
    """``MCReward(cuda_graph=True)``: on CUDA each chunk's rollout and scoring replays a captured
    graph after its warm-up calls, drawing the same numbers from the same generator as the eager
    reward: five calls on fresh sequences (two eager, the capture, two replays), two chunk shapes
    (chunk_rows), a generator with an end-of-sequence id. Out-of-range ids are refused before a
    replay, and another rollout policy captures again. Off CUDA the option changes nothing."""
    from agents.generator import Generator
    from discriminators import CNNDiscriminator

    gen = Generator(50, 6, eos_id=7, seed=0).to(device)
    d = CNNDiscriminator(50, 6, size="small").to(device)
    out = {}
    for graph in (False, True):
        reward = MCReward(d, "prob", rollout_policy=gen, n_rollouts=3, chunk_rows=48, cuda_graph=graph).bind(50, 7, 50)
        rng, data = torch.Generator(device=device).manual_seed(1), torch.Generator(device=device).manual_seed(0)
        out[graph] = [reward.sequence_rewards(*gen.sample_with_lengths(4, generator=data), rng) for _ in range(5)]
    for a, b in zip(out[False], out[True], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    if device.type != "cuda":
        assert not reward._graphs
        return
    assert (16, 6) in reward._graphs  # the full chunks of 16 prefixes were captured (the last chunk's
    # size depends on how many sampled sequences ended early)
    bad, lengths = gen.sample_with_lengths(4, generator=data)
    bad[0, 0] = 51
    with pytest.raises(ValueError, match="token ids must lie in"):
        reward.sequence_rewards(bad, lengths, rng)
    reward.set_rollout_policy(Generator(50, 6, eos_id=7, seed=1).to(device))
    reward.sequence_rewards(*gen.sample_with_lengths(4, generator=data), rng)
    assert not reward._graphs  # the new policy's chunks start their warm-up again


class _CountingRollout:
    """Completes prefix p with tokens (p + k) % 7 + 2 and an <eos> (id 0) at position p + 2: a
    deterministic policy whose completions depend on the prefix, counting the rows it completes."""

    def __init__(self):
        self.rows = 0

    def rollout(self, tokens, prefix_lengths, *, temperature=1.0, generator=None):
        self.rows += tokens.shape[0]
        M, T = tokens.shape
        pos = torch.arange(T)[None, :]
        fill = (prefix_lengths[:, None] + pos) % 7 + 2
        out = torch.where(pos < prefix_lengths[:, None], tokens, fill)
        return torch.where(pos == prefix_lengths[:, None] + 2, torch.zeros_like(out), out)


def test_mc_rewards_of_short_sequences_roll_out_only_their_proper_prefixes(toy_scorer):
    V, T, n = 10, 8, 3
    policy = _CountingRollout()
    reward = MCReward(toy_scorer(V), transform="prob", rollout_policy=policy, n_rollouts=n).bind(V, 0, V)
    tokens = torch.tensor([[5, 6, 0, V, V, V, V, V], [4, 4, 4, 4, 4, 0, V, V], [3, 9, 2, 7, 5, 8, 6, 2]])
    lengths = torch.tensor([3, 6, 8])  # two end with <eos>, one runs to T
    got = reward.sequence_rewards(tokens, lengths)
    assert policy.rows == n * int((lengths - 1).sum())  # no rollout of a prefix at or past the end
    scorer = toy_scorer(V)
    want = torch.zeros(3, T)
    for i in range(3):  # the slow definition: Q of each proper prefix, then D(Y) at the last step
        L = int(lengths[i])
        for p in range(1, L):
            full = policy.rollout(tokens[i : i + 1], torch.tensor([p]))[0]
            end = int((full == 0).nonzero()[0]) + 1 if bool((full == 0).any()) else T
            want[i, p - 1] = torch.sigmoid(scorer.score(full[None, :end]))[0]
        want[i, L - 1] = torch.sigmoid(scorer.score(tokens[i : i + 1, :L]))[0]
    torch.testing.assert_close(got, want)


def test_masked_mean_ignores_any_value_at_masked_positions():
    from textgym.masks import masked_mean

    x = torch.tensor([[1.0, 2.0, -math.inf], [3.0, math.nan, math.inf]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = masked_mean(x, mask)
    assert out.item() == 2.0
    out.backward()
    assert torch.equal(x.grad, mask.float() / 3)
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


def test_mc_value_is_the_mean_of_the_transformed_rollout_scores(toy_scorer):
    """R1: Q = (1/n) Σ_k f(D(Y^k)), not f of the mean logit. Rollout k of a group fills with token 2 + 10 k."""
    Vt, n = 40, 3

    class SpreadPolicy:
        def rollout(self, tokens, prefix_lengths, *, temperature=1.0, generator=None):
            k = torch.arange(tokens.shape[0]) % n
            fill = (2 + 10 * k)[:, None].expand_as(tokens)
            keep = torch.arange(tokens.shape[1]) < prefix_lengths[:, None]
            return torch.where(keep, tokens, fill)

    scorer = toy_scorer(Vt)
    reward = MCReward(scorer, "prob", rollout_policy=SpreadPolicy(), n_rollouts=n).bind(Vt, None, Vt)
    tokens, plen = torch.tensor([[5, 6, 7, 8]]), torch.tensor([1])
    got = reward.values(tokens, plen)
    rows = [torch.tensor([[5] + [2 + 10 * k] * 3]) for k in range(n)]
    want = sum(float(torch.sigmoid(scorer.score(r))[0]) for r in rows) / n
    assert float(got[0]) == pytest.approx(want, rel=1e-6)


def test_the_log_transform_is_finite_and_exact_at_extreme_logits():
    """R1: log D = log σ(s) must stay finite where σ(s) underflows to 0 in float32 (s below about -103): a saturated
    discriminator's logit of -200 is a reward of -200, not -inf (log(sigmoid(s)) computed naively)."""
    from textgym.rewards import TRANSFORMS

    s = torch.tensor([-200.0, -120.0, -30.0, 0.0, 30.0, 200.0])
    got = TRANSFORMS["log"](s)
    want = torch.tensor([-200.0, -120.0, -30.0, -math.log(2.0), -math.exp(-30.0), 0.0])
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)
