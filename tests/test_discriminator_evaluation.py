"""Held-out evaluation of discriminators (``discriminators.evaluation``) and the no-information
controls ``constant`` and ``random`` (``discriminators.controls``)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import discriminators
from discriminators import DiscriminatorTrainer
from test_discriminators import _toy, small


# ---------------------------------------------------------------------- held-out evaluation
class FixedLogits(nn.Module):
    """A per-prefix stub with logits fixed by the tokens: prefix t scores ``tokens[:, t] - 5``."""

    supports_prefixes = True
    is_probabilistic = True
    vocab_size, max_length = 10, 3

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.modes: list = []

    def score_prefixes(self, tokens, lengths=None):
        self.modes.append((self.training, torch.is_grad_enabled()))
        T = tokens.shape[1]
        idx = torch.minimum(torch.arange(T)[None, :], (lengths - 1)[:, None])
        return tokens.gather(1, idx).float() - 5.0

    def score(self, tokens, lengths=None):
        return self.score_prefixes(tokens, lengths).gather(1, (lengths - 1)[:, None]).squeeze(1)

    forward = score


def test_evaluate_matches_a_hand_computation():
    P = 10  # pad
    real = torch.tensor([[7, 5, 9], [5, 3, P], [6, P, P]])  # prefix logits [2, 0, 4], [0, -2], [1]
    fake = torch.tensor([[4, 8, 2], [5, 5, P]])             # prefix logits [-1, 3, -3], [0, 0]
    real_len, fake_len = torch.tensor([3, 2, 1]), torch.tensor([3, 2])
    d = FixedLogits().train()
    trainer = DiscriminatorTrainer(d, seed=0)
    out = trainer.evaluate(real, real_len, fake, fake_len)
    # Last logits: real 4, -2, 1 (right, wrong, right); fake -3, 0 (right, a tie: one half).
    assert out["acc_real"] == pytest.approx(2 / 3) and out["acc_fake"] == pytest.approx(0.75)
    assert out["balanced_acc"] == pytest.approx((2 / 3 + 0.75) / 2)
    sp = lambda z: math.log1p(math.exp(z))  # noqa: E731  BCE(z, 1) = sp(-z), BCE(z, 0) = sp(z)
    assert out["loss"] == pytest.approx(((sp(-4) + sp(2) + sp(-1)) / 3 + (sp(-3) + sp(0)) / 2) / 2)
    # t = 0: real 2, 0, 1 -> 2.5/3, fake -1, 0 -> 1.5/2; t = 1: real 0, -2 -> 0.25, fake 3, 0 -> 0.25;
    # t = 2: real 4, fake -3 -> 1.
    assert out["acc_by_position"] == pytest.approx([(2.5 / 3 + 0.75) / 2, 0.25, 1.0])
    assert (out["n_real"], out["n_fake"]) == (3, 2)
    assert d.modes and all(m == (False, False) for m in d.modes) and d.training  # eval, no grad, restored
    # In chunks of one row: the same numbers.
    chunked = discriminators.evaluate(d, real, real_len, fake, fake_len, batch_size=1)
    assert chunked.pop("loss") == pytest.approx(out.pop("loss"), rel=1e-6) and chunked == out


def test_evaluate_changes_nothing_and_draws_no_random_number():
    torch.manual_seed(0)
    d = small("rnn", vocab_size=50, max_length=8, dropout=0.5).train()
    trainer = DiscriminatorTrainer(d, seed=0)
    data = (*_toy(20, 0), *_toy(20, 1, shift=1))
    params = {k: v.clone() for k, v in d.state_dict().items()}
    rng, gen = torch.get_rng_state(), trainer.generator.get_state()
    a = trainer.evaluate(*data)
    b = trainer.evaluate(*data)
    assert a == b and d.training and trainer.total_steps == 0
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(trainer.generator.get_state(), gen)
    assert all(torch.equal(v, params[k]) for k, v in d.state_dict().items())
    assert a["balanced_acc"] == pytest.approx(0.5 * (a["acc_real"] + a["acc_fake"]))
    assert set(a) == {"loss", "acc_real", "acc_fake", "balanced_acc", "acc_by_position", "n_real", "n_fake"}
    cnn = DiscriminatorTrainer(small("cnn", vocab_size=50, max_length=8), seed=0).evaluate(*data)
    assert "acc_by_position" not in cnn and 0 <= cnn["balanced_acc"] <= 1


# ---------------------------------------------------------------------- no-information controls
def test_constant_control_scores_zero_for_everything():
    c = discriminators.make("constant", vocab_size=50, max_length=8)
    assert isinstance(c, discriminators.ConstantDiscriminator) and not isinstance(c, nn.Module)
    assert c.is_probabilistic and c.supports_prefixes and c.to("cpu") is c
    g = torch.Generator().manual_seed(0)
    for n, t in [(1, 1), (3, 8), (5, 4)]:
        x = torch.randint(50, (n, t), generator=g)
        lengths = torch.randint(1, t + 1, (n,), generator=g)
        for s in (c.score(x), c.score(x, lengths)):
            assert s.dtype == torch.float32 and torch.equal(s, torch.zeros(n))
        assert torch.equal(c.score_prefixes(x, lengths), torch.zeros(n, t))
    with pytest.raises(ValueError, match="token id 51 is out of range"):
        c.score(torch.tensor([[51]]))
    with pytest.raises(ValueError, match="exceeds the discriminator's max_length 8"):
        c.score(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['seed'\].*accepted options: \['max_length'\]"):
        discriminators.make("constant", vocab_size=50, seed=0)
    with pytest.raises(ValueError, match="never trained"):
        DiscriminatorTrainer(c)
    real, fake = torch.randint(50, (20, 8), generator=g), torch.randint(50, (10, 8), generator=g)
    out = discriminators.evaluate(c, real, None, fake, None)
    assert out["acc_real"] == out["acc_fake"] == out["balanced_acc"] == 0.5
    assert out["loss"] == pytest.approx(math.log(2)) and out["acc_by_position"] == [0.5] * 8


def test_random_control_is_seeded_input_independent_and_standard_normal():
    make = lambda **kw: discriminators.make("random", vocab_size=50, max_length=8, **kw)  # noqa: E731
    a, b, other = make(seed=3), make(seed=3), make(seed=4)
    assert not isinstance(a, nn.Module) and a.is_probabilistic and a.supports_prefixes
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randint(50, (4, 8), generator=g), torch.randint(50, (4, 8), generator=g)
    len2 = torch.tensor([1, 8, 3, 5])
    # Same seed, same call index: the same logits whatever the tokens and lengths.
    seq_a = [a.score(x1), a.score_prefixes(x1), a.score(x1)]
    seq_b = [b.score(x2, len2), b.score_prefixes(x2, len2), b.score(x2)]
    for u, v in zip(seq_a, seq_b, strict=True):
        assert torch.equal(u, v)
    assert seq_a[1].shape == (4, 8) and not torch.equal(seq_a[0], seq_a[2])  # each call draws anew
    assert not torch.equal(other.score(x1), make(seed=3).score(x1))
    # The draws are those of a CPU generator seeded with the seed.
    ref = torch.Generator().manual_seed(3)
    assert torch.equal(make(seed=3).score(x1), torch.randn(4, generator=ref))
    # Standard normal: 10,000 draws (mean within 4 standard errors of 0, std within 0.03 of 1).
    s = make(seed=7).score(torch.zeros(10_000, 1, dtype=torch.long))
    assert abs(float(s.mean())) < 0.04 and abs(float(s.std()) - 1) < 0.03
    # Its own generator only; seed=None takes the seed from the global RNG (reproducible under a seed).
    rng = torch.get_rng_state()
    a.score(x1)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(5)
    c1 = make()
    torch.manual_seed(5)
    assert torch.equal(c1.score(x1), make().score(x1))
    # Its state resumes the same sequence.
    state = a.state_dict()
    first = a.score(x1)
    a.load_state_dict(state)
    assert torch.equal(a.score(x1), first)
    with pytest.raises(RuntimeError, match="only 'generator'"):
        a.load_state_dict({"embedding.weight": torch.zeros(1)})


@pytest.mark.parametrize("name", ["constant", "random"])
@pytest.mark.parametrize("reward", ["terminal", "dense", "mc"])
def test_controls_give_rewards_through_textgym(name, reward, small_oracle_data):
    from textgym import TokenVecEnv
    from textgym.oracle import OracleLSTM
    from textgym.rewards import make_reward

    d = discriminators.make(name, vocab_size=50, max_length=6)
    kw = dict(rollout_policy=OracleLSTM(vocab_size=50, max_length=6, seed=1), n_rollouts=3) if reward == "mc" else {}
    r = make_reward(reward, d, **kw).bind(50, None, 50)
    tokens = torch.randint(50, (4, 6), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([2, 6, 3, 6])
    tokens = tokens.masked_fill(torch.arange(6) >= lengths[:, None], 50)
    done, active = lengths == 6, torch.ones(4, dtype=torch.bool)
    out = r.step(tokens, lengths, done, active, torch.Generator().manual_seed(0))
    assert out.shape == (4,) and torch.isfinite(out).all()
    given = done if reward == "terminal" else active
    assert torch.equal(out[~given], torch.zeros(int((~given).sum())))
    if name == "constant":  # default transform "prob": σ(0) = 1/2 whenever a reward is given
        assert torch.equal(out[given], torch.full((int(given.sum()),), 0.5))
    if reward != "terminal":
        full = torch.randint(50, (3, 6), generator=torch.Generator().manual_seed(1))
        seq = r.sequence_rewards(full, torch.full((3,), 6))
        assert seq.shape == (3, 6) and torch.isfinite(seq).all()
    # By name through the env too.
    venv = TokenVecEnv(2, data=small_oracle_data, reward=reward, discriminator=name, seed=0)
    venv.reset()
    for _ in range(6):
        _, rew, _, _, _ = venv.step(torch.tensor([1, 2]))
        assert torch.isfinite(rew).all()


# ---------------------------------------------------------------------- accuracy rules against slow references
def test_correct_class_shares_ties_like_a_uniform_guess():
    g = torch.Generator().manual_seed(0)
    z = torch.randint(0, 3, (200, 4), generator=g).float()  # many ties among 4 classes
    y = torch.randint(0, 4, (200,), generator=g)
    want = []
    for row, t in zip(z.tolist(), y.tolist(), strict=True):
        top = [c for c, v in enumerate(row) if v == max(row)]
        want.append(1.0 / len(top) if t in top else 0.0)
    assert discriminators.evaluation.correct_class(z, y).tolist() == pytest.approx(want, abs=1e-7)
    assert discriminators.evaluation.correct_class(torch.zeros(5, 3), torch.arange(5) % 3).tolist() == \
        pytest.approx([1 / 3] * 5)


def test_rank_accuracy_counts_every_pair():
    g = torch.Generator().manual_seed(1)
    real = torch.randint(0, 6, (37,), generator=g).float()  # ties across the two sets
    fake = torch.randint(0, 6, (23,), generator=g).float()
    pairs = [1.0 if r > f else 0.5 if r == f else 0.0 for r in real.tolist() for f in fake.tolist()]
    assert discriminators.evaluation.rank_accuracy(real, fake) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    # the sign of the logits does not matter: a relativistic call compares them
    assert discriminators.evaluation.rank_accuracy(torch.tensor([10.0, 11.0]), torch.tensor([5.0, 9.0])) == 1.0
    assert discriminators.evaluation.rank_accuracy(torch.zeros(4), torch.zeros(3)) == 0.5
    with pytest.raises(ValueError, match="needs real and fake"):
        discriminators.evaluation.rank_accuracy(real, fake[:0])


def test_logit_stats_match_a_hand_computation():
    real, fake = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([-3.0, 0.5])
    out = discriminators.evaluation.logit_stats(real, fake)
    bce = lambda z, y: -math.log(1 / (1 + math.exp(-z))) if y else -math.log(1 - 1 / (1 + math.exp(-z)))  # noqa: E731
    loss = 0.5 * (sum(bce(z, 1) for z in real.tolist()) / 3 + sum(bce(z, 0) for z in fake.tolist()) / 2)
    assert out["loss"] == pytest.approx(loss, rel=1e-6)
    assert out["acc_real"] == pytest.approx(1.5 / 3) and out["acc_fake"] == 0.5
    assert out["balanced_acc"] == pytest.approx(0.5 * (0.5 + 0.5)) and (out["n_real"], out["n_fake"]) == (3, 2)
