"""Tests of the ``discriminators`` package: learning, prefix scores, scoring mode, input checks,
the trainer (statistics, replay, divergence, checkpoints) and the registry.

The learning tests use a fixed random "teacher" LSTM defined here (torch only): vocabulary
5000, length 20, embedding and hidden 32, N(0, 1) weights like SeqGAN's oracle, and an output
bias that is a Zipfian log-prior over a random ranking of the ids (``-1.5 log rank``, with the
context term scaled by 0.5), so that, like text, a few ids are frequent and most are rare.
Discriminating its samples from the same teacher at temperature 1.5 is then well posed (the
exact likelihood-ratio test reaches 99.5% accuracy). With SeqGAN's own oracle (Gaussian
logits, no Zipfian prior) the Bayes-optimal accuracy of 1.0 vs 1.5 at length 20 is only about
95.6%, so a ">= 95%" bar there would demand a perfect discriminator.

Everything runs single-threaded (restored afterwards): on a shared 2-core machine
oversubscribed intra-op threads make small kernels several times slower.
"""
from __future__ import annotations

import ast
import copy
import io
import math
import pathlib

import pytest
import torch
from torch import nn

import discriminators
from discriminators import CNNDiscriminator, DiscriminatorTrainer, DivergenceError, RNNDiscriminator

V, L = 5000, 20
ROOT = pathlib.Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


class Teacher:
    """A fixed random LSTM language model with a Zipfian unigram prior (see the module docstring)."""

    def __init__(self, vocab_size: int, length: int, seed: int = 0, dim: int = 32,
                 zipf: float = 1.5, context: float = 0.5) -> None:
        g = torch.Generator().manual_seed(seed)
        self.V, self.L = vocab_size, length
        self.emb = torch.randn(vocab_size, dim, generator=g)
        self.cell = nn.LSTMCell(dim, dim)
        with torch.no_grad():
            for p in self.cell.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.Wo = torch.randn(vocab_size, dim, generator=g) * context
        self.bo = -zipf * (torch.randperm(vocab_size, generator=g).float() + 1).log()

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, L) int64 samples (inverse-CDF sampling; token 0 is the start input)."""
        h = torch.zeros(n, self.cell.hidden_size)
        c = torch.zeros_like(h)
        x = torch.zeros(n, dtype=torch.long)
        out = []
        for _ in range(self.L):
            h, c = self.cell(self.emb[x], (h, c))
            logits = torch.addmm(self.bo, h, self.Wo.t()) / temperature
            cdf = (logits - logits.amax(1, keepdim=True)).exp_().cumsum_(1)
            u = torch.rand(n, 1, generator=generator) * cdf[:, -1:]
            x = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=self.V - 1)
            out.append(x)
        return torch.stack(out, 1)


N_TRAIN, N_TEST = 1500, 500


@pytest.fixture(scope="module")
def teacher_data():
    teacher = Teacher(V, L, seed=0)
    g = torch.Generator().manual_seed(1)
    real = teacher.sample(N_TRAIN + N_TEST, generator=g)
    hot = teacher.sample(N_TRAIN + N_TEST, temperature=1.5, generator=g)
    uniform = torch.randint(V, (N_TRAIN + N_TEST, L), generator=g)
    return {"real": real, "temperature": hot, "uniform": uniform}


SMALL = {
    "cnn": dict(size="small"),
    "rnn": dict(emb_dim=32, hidden=64),
}


def small(name: str, vocab_size: int = V, max_length: int = L, **options):
    return discriminators.make(name, vocab_size=vocab_size, max_length=max_length, **{**SMALL[name], **options})


def heldout_accuracy(d, real: torch.Tensor, fake: torch.Tensor) -> float:
    return 0.5 * (float((d.score(real) > 0).float().mean()) + float((d.score(fake) < 0).float().mean()))


# ---------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", ["cnn", "rnn"])
@pytest.mark.parametrize("fake_kind,epochs", [("temperature", 4), ("uniform", 1)])
def test_learns_to_discriminate(teacher_data, name, fake_kind, epochs):
    torch.manual_seed(0)
    d = small(name)
    trainer = DiscriminatorTrainer(d, lr=3e-3, batch_size=64, seed=0)
    real, fake = teacher_data["real"], teacher_data[fake_kind]
    stats = trainer.step(real[:N_TRAIN], None, fake[:N_TRAIN], None, k=epochs)
    assert stats["steps"] == epochs * math.ceil(2 * N_TRAIN / 64)
    acc = heldout_accuracy(d, real[N_TRAIN:], fake[N_TRAIN:])
    assert acc >= 0.95, f"{name} reached only {acc:.3f} held-out accuracy against {fake_kind} samples"


# ---------------------------------------------------------------------- registry and defaults
def test_registry_and_seqgan_defaults():
    assert discriminators.available() == ["cnn", "constant", "random", "rnn"] == sorted(discriminators.REGISTRY)
    with pytest.raises(ValueError, match=r"unknown discriminator 'transformer'.*\['cnn', 'constant', 'random', 'rnn'\]"):
        discriminators.make("transformer", vocab_size=10)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['hiden'\].*accepted options.*hidden"):
        discriminators.make("rnn", vocab_size=10, hiden=3)
    d = discriminators.make("cnn", vocab_size=V)
    assert isinstance(d, CNNDiscriminator) and d.max_length == 20 and d.is_probabilistic
    assert d.emb_dim == 64 and d.dropout_p == 0.25 and d.l2_reg == 0.1  # keep probability 0.75; λ = 0.2 on two rows
    assert d.widths == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
    assert d.filters == (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160) and d.feature_dim == 1720
    assert d.embedding.num_embeddings == V + 1 and d.embedding.padding_idx == V
    assert isinstance(d.highway.transform, nn.Linear) and isinstance(d.highway.gate, nn.Linear)
    assert d.supports_prefixes is False and not hasattr(d, "score_prefixes")
    r = discriminators.make("rnn", vocab_size=V, cell="gru", max_length=7)
    assert isinstance(r, RNNDiscriminator) and isinstance(r.rnn, nn.GRU) and r.max_length == 7
    assert r.supports_prefixes is True and r.embedding.padding_idx == V
    assert discriminators.make("cnn", vocab_size=V, widths=[2, 3], filters=[4, 5], emb_dim=8).feature_dim == 9
    with pytest.raises(ValueError, match="unknown cell"):
        discriminators.make("rnn", vocab_size=10, cell="tcn")
    with pytest.raises(ValueError, match="unknown size"):
        discriminators.make("cnn", vocab_size=10, size="huge")


def test_protocol_and_textgym_scorers(device):
    from textgym import scorers
    from textgym.protocols import Discriminator

    x = torch.randint(50, (4, 6))  # on the CPU: scorers bring the tokens to the scorer's device
    lengths = torch.tensor([6, 3, 1, 5])
    xd, lengths_d = x.to(device), lengths.to(device)
    for name in ("cnn", "rnn"):
        d = small(name, vocab_size=50, max_length=6).to(device).train()
        assert isinstance(d, Discriminator)
        out = scorers.score(d, x, lengths)
        assert out.device.type == device.type
        assert torch.equal(out, d.score(xd, lengths_d))
        assert d.training
        assert scorers.supports_prefixes(d) == (name == "rnn")
    r = small("rnn", vocab_size=50, max_length=6).to(device)
    assert torch.equal(scorers.score_prefixes(r, x, lengths), r.score_prefixes(xd, lengths_d))


def test_package_imports_torch_only():
    for path in (ROOT / "discriminators").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in ("textgym", "agents", "train"), f"{path.name} imports {n}"


# ---------------------------------------------------------------------- shapes, lengths, padding
@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_shapes_and_masking_by_lengths(name, device):
    torch.manual_seed(0)
    d = discriminators.make(name, vocab_size=V, max_length=L).to(device).eval()  # full-size defaults
    x = torch.randint(V, (5, L), device=device)
    lengths = torch.tensor([20, 7, 1, 3, 12], device=device)
    assert d(x, lengths).shape == (5,) and d(x, lengths).device.type == device.type
    assert d.features(x, lengths).shape == (5, d.feature_dim)
    # What lies beyond a sequence's length does not matter: pad ids or garbage.
    pos = torch.arange(L, device=device)
    padded = x.masked_fill(pos >= lengths[:, None], V)
    garbage = torch.where(pos >= lengths[:, None], torch.randint(V, (5, L), device=device), x)
    ref = d.score(padded, lengths)
    torch.testing.assert_close(d.score(garbage, lengths), ref, rtol=0, atol=1e-5)
    # Short inputs (T below the widest CNN window) and trailing all-pad columns work.
    torch.testing.assert_close(d.score(padded[:, :12], lengths.clamp(max=12))[[1, 2, 3, 4]], ref[[1, 2, 3, 4]],
                               rtol=0, atol=1e-5)
    assert torch.isfinite(d.score(x[:, :1])).all()
    # No lengths: all positions are valid.
    torch.testing.assert_close(d.score(x), d.score(x, torch.full((5,), L, device=device)), rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("position_features,layer_norm,num_layers", [
    (None, True, 1), ("add", False, 1), ("concat", True, 2)])
def test_rnn_prefix_scores_equal_truncated_scores(cell, position_features, layer_norm, num_layers):
    torch.manual_seed(0)
    r = discriminators.make("rnn", vocab_size=100, max_length=12, cell=cell, emb_dim=16, hidden=24,
                            position_features=position_features, layer_norm=layer_norm,
                            num_layers=num_layers, dropout=0.3).train()
    x = torch.randint(100, (6, 12))
    lengths = torch.tensor([12, 5, 1, 9, 2, 12])
    prefixes = r.score_prefixes(x, lengths)
    assert prefixes.shape == (6, 12) and not prefixes.requires_grad and r.training
    for t in range(12):
        truncated = r.score(x[:, : t + 1], torch.clamp(lengths, max=t + 1))
        torch.testing.assert_close(prefixes[:, t], truncated, rtol=0, atol=1e-5)
    # Past the end, columns repeat the whole sequence's logit.
    torch.testing.assert_close(prefixes[:, -1], r.score(x, lengths), rtol=0, atol=1e-5)
    # forward_prefixes: differentiable, current (training) mode.
    r.eval()
    out = r.forward_prefixes(x, lengths)
    assert out.requires_grad
    torch.testing.assert_close(out.detach(), prefixes, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_score_is_deterministic_eval_no_grad_and_restores_mode(name):
    torch.manual_seed(0)
    d = small(name, vocab_size=100, max_length=10, dropout=0.5).train()
    x = torch.randint(100, (32, 10))
    a, b = d(x), d(x)
    assert not torch.equal(a, b)  # dropout is on in training mode
    s1, s2 = d.score(x), d.score(x)
    assert torch.equal(s1, s2) and not s1.requires_grad
    assert d.training  # mode restored
    d.eval()  # the CNN scores with matrix products where training convolves: equal up to rounding
    torch.testing.assert_close(d(x).detach(), s1, rtol=1e-5, atol=1e-6)
    d.score(x)
    assert not d.training  # eval stays eval


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_bad_inputs_raise_with_messages(name):
    d = small(name)
    x = torch.randint(V, (3, L))
    bad = x.clone()
    bad[1, 4] = 5003
    with pytest.raises(ValueError, match=r"token id 5003 is out of range for a discriminator with a vocabulary "
                                         r"of 5000 tokens \(pad id 5000\)"):
        d(bad)
    bad[1, 4] = -1
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        d.score(bad)
    with pytest.raises(ValueError, match="sequence length 21 exceeds the discriminator's max_length 20"):
        d.score(torch.zeros(2, 21, dtype=torch.long))
    with pytest.raises(ValueError, match="empty batch"):
        d.score(torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        d.score(x.float())
    with pytest.raises(ValueError, match=r"tokens must be a \(N, T\) tensor"):
        d.score(x[0])
    with pytest.raises(ValueError, match=r"length 0 is out of range: lengths must lie in \[1, 20\]"):
        d.score(x, torch.tensor([3, 0, 2]))
    with pytest.raises(ValueError, match=r"length 21 is out of range"):
        d.score(x, torch.tensor([3, 21, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        d.score(x, torch.tensor([3, 2]))
    # The pad id itself is accepted anywhere (it embeds as zeros).
    assert d.score(torch.full((2, 4), V)).shape == (2,)
    with torch.no_grad():
        d.out.bias.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="non-finite logits"):
        d.score(x)
    if name == "rnn":
        with pytest.raises(DivergenceError, match="non-finite logits"):
            d.score_prefixes(x)


# ---------------------------------------------------------------------- trainer
def _toy(n: int, seed: int, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(50, (n, 8), generator=g) // 2 * 2 + shift  # even ids (real) or odd ids (fake)
    lengths = torch.randint(1, 9, (n,), generator=g)
    return tokens.masked_fill(torch.arange(8) >= lengths[:, None], 50), lengths


def test_a_full_replay_buffer_keeps_the_last_fake_drawn_into_each_slot(device):
    """Slots are drawn with replacement; a slot drawn twice must hold the later fake on every
    device (a plain indexed write leaves the order of duplicates undefined on CUDA)."""
    d = small("rnn", vocab_size=50, max_length=8)
    t = DiscriminatorTrainer(d, lr=1e-2, batch_size=32, seed=0, replay_size=6, replay_fraction=0.0, device=device)
    first, first_len = _toy(6, 2, shift=1)
    t._replay(first.to(device), first_len.to(device))  # fills the buffer
    fake, fake_len = _toy(40, 3, shift=1)  # 40 writes into 6 slots: duplicates for sure
    g = torch.Generator().set_state(t.generator.get_state())
    slots = torch.randint(6, (40,), generator=g)
    want, want_len = first.clone(), first_len.clone()
    for i, slot in enumerate(slots.tolist()):  # the obvious sequential write
        want[slot], want_len[slot] = fake[i], fake_len[i]
    t._replay(fake.to(device), fake_len.to(device))
    assert torch.equal(t.replay_tokens.cpu(), want) and torch.equal(t.replay_lengths.cpu(), want_len)


def test_trainer_stats_label_smoothing_and_replay(device):
    torch.manual_seed(0)
    d = small("rnn", vocab_size=50, max_length=8)
    real, real_len = _toy(100, 0)
    fake, fake_len = _toy(60, 1, shift=1)
    t = DiscriminatorTrainer(d, lr=1e-2, batch_size=32, seed=0, label_smoothing=0.1, replay_size=80, device=device)
    assert d.device.type == device.type
    s = t.step(real, real_len, fake, fake_len, k=2)
    assert set(s) >= {"loss", "acc_real", "acc_fake", "steps", "total_steps"}
    assert s["steps"] == 2 * math.ceil(160 / 32) == s["total_steps"] and s["n_replayed"] == 0
    assert 0 <= s["acc_real"] <= 1 and 0 <= s["acc_fake"] <= 1 and math.isfinite(s["loss"])
    assert t.replay_tokens.shape == (60, 8) and t.replay_tokens.device.type == device.type
    s = t.step(real, real_len, fake, fake_len, k=3)
    assert s["n_replayed"] == 30 and s["n_fake"] == 60 and s["total_steps"] == 10 + 15
    assert t.replay_tokens.shape == (80, 8) and t.replay_lengths.shape == (80,)
    for _ in range(3):
        s = t.step(real, real_len, fake, fake_len, k=2)
    assert s["acc_real"] > 0.9 and s["acc_fake"] > 0.9
    # With label smoothing 0.1 the loss cannot go below the entropy of the smoothed target.
    floor = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) * 100 / 160
    assert s["loss"] >= floor - 1e-3
    # A single small batch: k passes are k updates.
    t2 = DiscriminatorTrainer(small("cnn", vocab_size=50, max_length=8), batch_size=64, seed=0, device=device)
    assert t2.step(real[:8], real_len[:8], fake[:8], None, k=5)["steps"] == 5
    # Sequences shorter than max_length are accepted (padded inside the trainer).
    assert t2.step(real[:8, :5], real_len[:8].clamp(max=5), fake[:8], fake_len[:8])["steps"] == 1


def test_trainer_bad_inputs():
    d = small("cnn", vocab_size=50, max_length=8)
    t = DiscriminatorTrainer(d, seed=0)
    real, real_len = _toy(10, 0)
    fake, fake_len = _toy(10, 1, shift=1)
    with pytest.raises(ValueError, match="empty batch"):
        t.step(real, real_len, fake[:0], fake_len[:0])
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        t.step(real, real_len, fake, fake_len, k=0)
    bad = fake.clone()
    bad[0, 0] = 51
    with pytest.raises(ValueError, match=r"fake sequences: token id 51 is out of range"):
        t.step(real, real_len, bad, fake_len)
    with pytest.raises(ValueError, match="max_length 8"):
        t.step(torch.zeros(2, 9, dtype=torch.long), None, fake, fake_len)
    with pytest.raises(ValueError, match="label_smoothing"):
        DiscriminatorTrainer(d, label_smoothing=1.0)


def test_trainer_divergence_names_the_update():
    torch.manual_seed(0)
    d = small("cnn", vocab_size=50, max_length=8)
    t = DiscriminatorTrainer(d, batch_size=16, seed=0)
    real, real_len = _toy(16, 0)
    fake, fake_len = _toy(16, 1, shift=1)
    t.step(real, real_len, fake, fake_len, k=1)  # 2 updates
    with torch.no_grad():
        d.convs[0].weight[0, 0, 0] = float("inf")
    before = {k: v.clone() for k, v in d.state_dict().items()}
    with pytest.raises(DivergenceError, match="update 3"):
        t.step(real, real_len, fake, fake_len, k=1)
    after = d.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the update was not applied
    assert t.total_steps == 2 and d.training  # the previous (training) mode is restored


def _train_two(trainer: DiscriminatorTrainer, data, seed: int) -> list:
    torch.manual_seed(seed)  # dropout masks come from the global RNG
    return [trainer.step(*data, k=2) for _ in range(2)]


@pytest.mark.parametrize("name", ["cnn", "rnn"])
def test_bfloat16_training_learns_as_float32_training_does(name):
    """precision="bfloat16" (mixed precision): from the same weights and minibatches, the held-out
    logits stay close to float32 training's and so does the held-out accuracy on a task with a
    signal; the weights, gradients and Adam stay float32, and the updates did run in another
    precision. Unknown precisions are refused."""
    V, T = 100, 12
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randint(V // 2, (384, T), generator=g), torch.randint(V // 2, V, (384, T), generator=g)
    held = torch.cat([real[256:], fake[256:]])
    out, acc = {}, {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        d = small(name, vocab_size=V, max_length=T, dropout=0.0)
        trainer = discriminators.DiscriminatorTrainer(d, lr=1e-3, seed=0, precision=precision)
        trainer.step(real[:256], None, fake[:256], None, k=2)
        assert all(p.dtype == torch.float32 for p in d.parameters())
        assert all(v.dtype == torch.float32 for st in trainer.optimizer.state.values() for v in st.values() if v.dim())
        out[precision], acc[precision] = d.score(held), heldout_accuracy(d, real[256:], fake[256:])
    z32, z16 = out["float32"], out["bfloat16"]
    assert not torch.equal(z32, z16)
    assert float((torch.sigmoid(z32) - torch.sigmoid(z16)).abs().max()) < 0.05
    assert acc["float32"] > 0.9 and abs(acc["float32"] - acc["bfloat16"]) <= 0.01
    with pytest.raises(ValueError, match="precision must be one of"):
        discriminators.DiscriminatorTrainer(small(name, vocab_size=V, max_length=T), precision="float16")


def test_trainer_is_deterministic_and_state_dict_round_trips(device):
    data = (*_toy(40, 0), *_toy(40, 1, shift=1))

    def fresh(seed: int = 0) -> DiscriminatorTrainer:
        torch.manual_seed(123)
        return DiscriminatorTrainer(small("rnn", vocab_size=50, max_length=8), lr=1e-2, batch_size=16,
                                    seed=seed, replay_size=50, device=device)

    a, b = fresh(), fresh()
    assert _train_two(a, data, 1) == _train_two(b, data, 1)
    for (k, v), w in zip(a.discriminator.state_dict().items(), b.discriminator.state_dict().values()):
        assert torch.equal(v, w), k
    # Checkpoint a, go on; a fresh trainer loaded from the checkpoint goes on identically.
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    stats_a = _train_two(a, data, 2)
    # Two trainers loaded from one state: each trains on its own copy of the optimizer's
    # moments (torch's optimizer would keep the given tensors, which both would then update).
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    c, d = fresh(seed=99), fresh(seed=98)
    c.load_state_dict(saved)
    d.load_state_dict(saved)
    assert c.total_steps == 20 and torch.equal(c.replay_tokens, b.replay_tokens)
    assert _train_two(c, data, 2) == stats_a
    assert _train_two(d, data, 2) == stats_a
    for (k, v), w in zip(a.discriminator.state_dict().items(), c.discriminator.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="lacks"):
        c.load_state_dict({"optimizer": {}})


# ---------------------------------------------------------------------- per-prefix training
def _first_token_toy(n: int, seed: int, first: int) -> torch.Tensor:
    """(n, 8) sequences over ids 2..9 whose first token is ``first``: real and fake differ there only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(2, 10, (n, 8), generator=g)
    x[:, 0] = first
    return x


def test_trainer_trains_the_prefix_scores_of_a_per_prefix_discriminator():
    # Real sequences start with 0, fake ones with 1; nothing else differs, so every prefix,
    # the first token alone included, is fully informative. The rewards of a dense reward are
    # the per-prefix scores, so training must move them all, not only the last position's.
    torch.manual_seed(0)
    d = small("rnn", vocab_size=10, max_length=8, emb_dim=16, hidden=32)
    real, fake = _first_token_toy(64, 0, 0), _first_token_toy(64, 1, 1)
    probe_real, probe_fake = _first_token_toy(200, 2, 0), _first_token_toy(200, 3, 1)
    before_real, before_fake = d.score_prefixes(probe_real), d.score_prefixes(probe_fake)
    trainer = DiscriminatorTrainer(d, lr=3e-3, batch_size=128, seed=0)
    for _ in range(5):
        trainer.step(real, None, fake, None, k=4)
    after_real, after_fake = d.score_prefixes(probe_real), d.score_prefixes(probe_fake)
    for t in (0, 1, 3):
        moved_real = float((after_real[:, t] - before_real[:, t]).mean())
        moved_fake = float((after_fake[:, t] - before_fake[:, t]).mean())
        assert moved_real > 2.0 and moved_fake < -2.0, (t, moved_real, moved_fake)
        assert bool((after_real[:, t] > 0).all()) and bool((after_fake[:, t] < 0).all()), t


def _bce(z: float, y: float) -> float:
    """Binary cross-entropy of a logit z against target y, written out."""
    p = 1.0 / (1.0 + math.exp(-z))
    return -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


@pytest.mark.parametrize("positions,weighted", [("all", False), ("all", True), ("last", False)])
def test_trainer_loss_equals_a_slow_reference(positions, weighted, device):
    # One minibatch holds the whole set, so the reported loss is the objective before the
    # update; the reference scores each truncated prefix on its own, in a Python loop, on the
    # CPU, and the trainer trains on ``device``.
    torch.manual_seed(0)
    d = small("rnn", vocab_size=7, max_length=5, emb_dim=4, hidden=6, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(7, (11, 5), generator=g)
    lengths = torch.randint(1, 6, (11,), generator=g)
    tokens = tokens.masked_fill(torch.arange(5) >= lengths[:, None], 7)
    is_real = [True] * 6 + [False] * 5
    w = torch.tensor([0.5, 2.0, 0.0, 1.0, 3.0]) if weighted else None
    ref_model = copy.deepcopy(d)
    num = den = 0.0
    for i in range(11):
        y = 0.9 if is_real[i] else 0.0  # label smoothing 0.1 on the real side
        L = int(lengths[i])
        for t in range(L) if positions == "all" else [L - 1]:
            z = float(ref_model.score(tokens[i : i + 1, : t + 1])[0])
            wt = 1.0 if w is None else float(w[t])
            num += wt * _bce(z, y)
            den += wt
    trainer = DiscriminatorTrainer(d, lr=1e-3, batch_size=64, seed=0, label_smoothing=0.1,
                                   positions=positions, position_weights=w, device=device)
    assert d.device.type == device.type
    stats = trainer.step(tokens[:6], lengths[:6], tokens[6:], lengths[6:], k=1)
    assert stats["steps"] == 1 and stats["reg"] == 0.0
    assert stats["loss"] == pytest.approx(num / den, rel=1e-5)
    assert ("acc_by_position" in stats) == (positions == "all")


def test_trainer_positions_defaults_and_refusals():
    cnn, rnn = small("cnn", vocab_size=50, max_length=8), small("rnn", vocab_size=50, max_length=8)
    assert DiscriminatorTrainer(cnn).positions == "last" and DiscriminatorTrainer(rnn).positions == "all"
    assert DiscriminatorTrainer(rnn, positions="last").positions == "last"
    with pytest.raises(ValueError, match="positions='all' .* per-prefix scores .*CNNDiscriminator"):
        DiscriminatorTrainer(cnn, positions="all")
    with pytest.raises(ValueError, match="positions must be one of"):
        DiscriminatorTrainer(rnn, positions="first")
    with pytest.raises(ValueError, match="position_weights apply to positions='all' only"):
        DiscriminatorTrainer(rnn, positions="last", position_weights=torch.ones(8))
    with pytest.raises(ValueError, match=r"shape \(max_length,\) = \(8,\)"):
        DiscriminatorTrainer(rnn, position_weights=torch.ones(5))
    with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
        DiscriminatorTrainer(rnn, position_weights=torch.zeros(8))
    with pytest.raises(ValueError, match="finite, >= 0"):
        DiscriminatorTrainer(rnn, position_weights=-torch.ones(8))


def test_trainer_acc_by_position_matches_a_reference(device):
    # A negligible learning rate and no dropout: the training-mode logits the statistics are
    # measured on are the eval-mode prefix scores before the step.
    torch.manual_seed(0)
    d = small("rnn", vocab_size=50, max_length=8, dropout=0.0).to(device)
    real, real_len = _toy(30, 0)
    fake, fake_len = _toy(20, 1, shift=1)
    before_real, before_fake = d.score_prefixes(real, real_len).cpu(), d.score_prefixes(fake, fake_len).cpu()
    width = int(max(real_len.max(), fake_len.max()))
    expected = []
    for t in range(width):
        r = [float(before_real[i, t] > 0) for i in range(30) if t < real_len[i]]
        f = [float(before_fake[i, t] < 0) for i in range(20) if t < fake_len[i]]
        expected.append(0.5 * (sum(r) / len(r) + sum(f) / len(f)) if r and f else math.nan)
    stats = DiscriminatorTrainer(d, lr=1e-12, batch_size=64, seed=0).step(real, real_len, fake, fake_len)
    assert stats["acc_by_position"] == pytest.approx(expected, nan_ok=True)
    last = lambda s, n: s.gather(1, (n - 1)[:, None]).squeeze(1)  # noqa: E731
    assert stats["acc_real"] == pytest.approx(float((last(before_real, real_len) > 0).float().mean()))
    assert stats["acc_fake"] == pytest.approx(float((last(before_fake, fake_len) < 0).float().mean()))


# ---------------------------------------------------------------------- SeqGAN's L2 penalty
def test_cnn_regularization_is_seqgans_l2_penalty_on_the_output_layer():
    torch.manual_seed(0)
    d = small("cnn", vocab_size=50, max_length=8)
    W, b = d.out.weight.detach().double(), d.out.bias.detach().double()
    # SeqGAN: l2_reg_lambda = 0.2 times tf.nn.l2_loss(x) = Σ x² / 2 of a two-row output layer. One
    # logit is the difference of the rows, d = w_1 - w_0; the least-norm rows ±d/2 carry the penalty
    # 0.2 · (2 · ‖d/2‖²) / 2, which is 0.1 · ‖d‖² / 2: the default l2_reg here.
    two_rows = 0.2 * (float(((W / 2) ** 2).sum()) * 2 / 2 + float(((b / 2) ** 2).sum()) * 2 / 2)
    assert float(d.regularization().detach()) == pytest.approx(two_rows, rel=1e-6)
    assert float(d.regularization().detach()) == pytest.approx(0.1 * (float((W**2).sum()) / 2 + float((b**2).sum()) / 2), rel=1e-6)
    assert d.regularization().requires_grad
    assert float(small("cnn", vocab_size=50, max_length=8, l2_reg=0.0).regularization().detach()) == 0.0
    assert float(small("rnn", vocab_size=50, max_length=8).regularization()) == 0.0
    with pytest.raises(ValueError, match="l2_reg must be >= 0"):
        small("cnn", vocab_size=50, max_length=8, l2_reg=-1.0)


def test_trainer_adds_the_regularization_to_the_loss(device):
    torch.manual_seed(1)
    with_reg = small("cnn", vocab_size=50, max_length=8, dropout=0.0, l2_reg=0.2).to(device)
    without = copy.deepcopy(with_reg)
    without.l2_reg = 0.0
    W0, b0 = with_reg.out.weight.detach().clone(), with_reg.out.bias.detach().clone()
    data = (*_toy(16, 0), *_toy(16, 1, shift=1))
    s_with = DiscriminatorTrainer(with_reg, lr=1e-3, batch_size=64, seed=0).step(*data)
    s_without = DiscriminatorTrainer(without, lr=1e-3, batch_size=64, seed=0).step(*data)
    # The gradients of the one update differ by ∇(λ(‖W‖² + ‖b‖²)/2) = λW, λb on the output layer only.
    grads_with = dict(with_reg.named_parameters())
    for name, p in without.named_parameters():
        diff = grads_with[name].grad - p.grad
        if name == "out.weight":
            torch.testing.assert_close(diff, 0.2 * W0, rtol=1e-4, atol=1e-7)
        elif name == "out.bias":
            torch.testing.assert_close(diff, 0.2 * b0, rtol=1e-4, atol=1e-7)
        else:
            torch.testing.assert_close(diff, torch.zeros_like(diff), rtol=0, atol=1e-7)
    assert s_with["reg"] == pytest.approx(0.1 * (float((W0**2).sum()) + float((b0**2).sum())), rel=1e-6)
    assert s_without["reg"] == 0.0 and s_with["loss"] == pytest.approx(s_without["loss"], rel=1e-6)


LOOKUP = {"lookup tables": 0, "products": 10**9}  # LOOKUP_MIN_WINDOWS that forces or refuses the tables


def pool_with(pooling, monkeypatch):
    """Force the CNN's scoring to read every width from lookup tables, or none ("products"), or
    let it choose with ``LOOKUP_MIN_WINDOWS = pooling`` (an int)."""
    monkeypatch.setattr("discriminators.cnn.LOOKUP_MIN_WINDOWS", LOOKUP.get(pooling, pooling))
    monkeypatch.setattr("discriminators.cnn.LOOKUP_MAX_BYTES", 2**62)  # no cap on the tables' size


def test_cnn_scoring_pools_with_matrix_products_and_lookup_tables_as_the_convolution_does(monkeypatch):
    """On the CPU without a gradient, each width's pooling is one matrix product per window
    position (``_max_windows``), or, for batches of many windows, sums of rows of a lookup table
    (``_max_lookup``, in blocks of a few windows here): the same maxima as the convolution,
    masked windows included, on rows shorter than some widths (of 12 and 15 only the first
    window counts) and padded rows."""
    monkeypatch.setattr("discriminators.cnn.LOOKUP_WINDOWS", 5)  # blocks of one or a few rows
    pool_with("lookup tables", monkeypatch)
    V, T = 40, 12
    torch.manual_seed(0)
    d = CNNDiscriminator(V, T, size="small", widths=(1, 2, 5, 12, 15), filters=(6, 5, 4, 3, 2)).eval()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([T, 1, 3, 7, T, 2, 5, 11])
    tokens = torch.randint(V, (8, T), generator=g).masked_fill(torch.arange(T)[None, :] >= lengths[:, None], V)
    e, ids = d._embed(tokens), d._pad(tokens)
    with torch.no_grad():
        tables = d._tables(ids)
    for w, conv, table in zip(d.widths, d.convs, tables, strict=True):
        assert table is not None and table.shape == ((V + 1) * w, conv.out_channels)
        with torch.enable_grad():
            ref = d._pool(e, lengths, conv, w).detach()  # the convolution (training's path)
        with torch.no_grad():
            products, lookup = d._pool(e, lengths, conv, w), d._pool(ids, lengths, conv, w, table=table)
        torch.testing.assert_close(products, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lookup, ref, rtol=1e-5, atol=1e-6)


def test_cnn_builds_lookup_tables_only_where_they_pay(monkeypatch):
    """A table per width only for a scoring call on the CPU with at least LOOKUP_MIN_WINDOWS
    windows of that width per table row, and tables of at most LOOKUP_MAX_BYTES in all: none for
    a training minibatch, none for a small scoring batch; the widest widths (fewest windows per
    row) are the first to go without."""
    from discriminators.cnn import LOOKUP_MIN_WINDOWS

    V, T = 100, 20

    def built(d, rows, grad=False):
        with torch.set_grad_enabled(grad):
            return [t is not None for t in d._tables(torch.zeros(rows, T, dtype=torch.long))]

    d = CNNDiscriminator(V, T, size="small", widths=(20, 1, 10), filters=(2, 2, 2))  # any order of widths
    need = LOOKUP_MIN_WINDOWS * (V + 1)  # rows·windows needed: w = 1 has 20 windows per row, w = 10 has 11, w = 20 one
    assert built(d, need // 20 - 1) == [False] * 3
    assert built(d, need // 11) == [False, True, False]
    assert built(d, need // 11 + 1) == [False, True, True]
    assert built(d, need) == [True] * 3
    assert built(d, need, grad=True) == [False] * 3  # training
    wide = CNNDiscriminator(V, T, size="small", widths=(1, 2), filters=(50, 50))  # columns w·f: 50, 100
    monkeypatch.setattr("discriminators.cnn.LOOKUP_MAX_BYTES", 149 * (V + 1) * 4)  # float32 values
    assert built(wide, need) == [True, False]
    monkeypatch.setattr("discriminators.cnn.LOOKUP_MAX_BYTES", 150 * (V + 1) * 4)
    assert built(wide, need) == [True, True]


@pytest.mark.parametrize("pooling", [*LOOKUP, "mixed"])
@pytest.mark.parametrize("one_conv", [False, True])
@pytest.mark.parametrize("full_length", [True, False])
def test_cnn_logits_and_gradients_equal_a_per_row_reference(full_length, one_conv, pooling, device, monkeypatch):
    """The pooled features against the obvious computation, row by row and width by width:
    ReLU of every window, the maximum over the windows that end by the row's length (the first
    window always counts), highway, output layer; with rows shorter than the widest window and
    padded rows, and rows all of full length (the path that skips the mask); per width, and with
    all widths in one convolution (``one_conv``, the path off the CPU). Rows 0, 3 and 4 repeat an
    n-gram (row 3 before its padding), so windows tie for the maximum: the reference splits the
    gradient between tied windows (amax), training gives it to one, and the parameters'
    gradients must agree. Scoring (no gradient) reads the windows from lookup tables, or forms
    them by matrix products, or both ("mixed": widths 1 and 2 from tables), on the CPU."""
    pool_with(pooling if pooling in LOOKUP else 2, monkeypatch)  # 2: tables where 6 rows have 11+ windows
    V, T = 30, 12
    torch.manual_seed(0)
    d = CNNDiscriminator(V, T, size="small", dropout=0.0).double().to(device)
    d.one_conv = one_conv
    tokens = torch.randint(V, (6, T))
    tokens[0] = torch.tensor([3, 7, 1] * 4)
    tokens[3] = torch.tensor([5, 2] * 6)  # length 7 when not full length: ties next to masked windows
    tokens[4] = tokens[4, :4].repeat(3)  # the same 4-gram at positions 0, 4 and 8
    lengths = torch.full((6,), T) if full_length else torch.tensor([T, 1, 3, 7, T, 2])
    tokens = tokens.masked_fill(torch.arange(T)[None, :] >= lengths[:, None], V).to(device)
    lengths = lengths.to(device)
    with torch.no_grad():  # the paths asked for are the paths taken; no tables off the CPU
        built = [t is not None for t in d._tables(d._pad(tokens))]
    expected = {"lookup tables": [True] * 5, "products": [False] * 5}.get(pooling, [True, True, False, False, False])
    assert built == (expected if device.type == "cpu" else [False] * 5)
    logits = d(tokens, lengths)
    grads = torch.autograd.grad(logits.sum(), list(d.parameters()), allow_unused=True)

    def reference():
        out = []
        for row, n in zip(tokens, lengths.tolist(), strict=True):
            width = max(T, max(d.widths))
            x = d.embedding(torch.cat([row, row.new_full((width - T,), V)])).t()  # (E, width)
            feats = []
            for w, conv in zip(d.widths, d.convs, strict=True):
                windows = [torch.relu(conv.bias + (conv.weight * x[:, j : j + w]).sum((1, 2)))
                           for j in range(width - w + 1) if j + w <= n or j == 0]
                feats.append(torch.stack(windows).amax(0))
            f = torch.cat(feats)
            g = torch.sigmoid(d.highway.gate(f))
            f = g * torch.relu(d.highway.transform(f)) + (1 - g) * f
            out.append(d.out(f)[0])
        return torch.stack(out)

    ref = reference()
    ref_grads = torch.autograd.grad(ref.sum(), list(d.parameters()), allow_unused=True)
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(d.score(tokens, lengths), ref.detach())  # scoring's path
    for a, b in zip(grads, ref_grads, strict=True):
        if b is None:
            assert a is None or not a.any()
        else:
            torch.testing.assert_close(a, b)


def test_seeded_blocks_draw_from_the_seed_and_leave_every_global_generator_as_it_was(device):
    from discriminators.base import seeded

    cpu_before = torch.get_rng_state()
    cuda_before = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    with seeded(3):
        x = torch.rand(4)
        layer = torch.nn.Linear(3, 2)
    assert torch.equal(x, torch.rand(4, generator=torch.Generator().manual_seed(3)))
    with seeded(3):
        torch.rand(4)
        assert torch.equal(torch.nn.Linear(3, 2).weight, layer.weight)  # the same seed builds the same module
    assert torch.equal(torch.get_rng_state(), cpu_before)
    if cuda_before is not None:
        assert torch.equal(torch.cuda.get_rng_state(device), cuda_before)
    with seeded(None):  # no seeding: the global stream goes on
        y = torch.rand(1)
    assert torch.equal(y, torch.rand(1, generator=torch.Generator().set_state(cpu_before)))


@pytest.mark.device
@pytest.mark.parametrize("pooling", [*LOOKUP, "mixed"])
def test_cnn_bfloat16_scoring_stays_within_its_stated_tolerance(device, pooling, monkeypatch):
    """score_dtype="bfloat16" (SeqGAN's full CNN, random weights, rows shorter than the widest
    window and padded ones): D(Y) = σ(logit) within 1e-2 of float32, logits float32, decisions
    changed only where the float32 logit is within 0.05 of 0; the float32 scores and training
    (never bfloat16) are untouched by the option. On the CPU, with the windows from lookup
    tables (float32 also here), or bfloat16 matrix products, or both ("mixed": widths 1–10 from
    tables)."""
    pool_with(pooling if pooling in LOOKUP else 9, monkeypatch)
    V, T = 300, 20
    torch.manual_seed(0)  # weights independent of the test order (12 seeds stayed within 0.007 of float32)
    d32 = discriminators.make("cnn", vocab_size=V, max_length=T).to(device)
    d16 = discriminators.make("cnn", vocab_size=V, max_length=T, score_dtype="bfloat16").to(device)
    d16.load_state_dict(d32.state_dict())
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(V, (256, T), generator=g)
    lengths = torch.randint(1, T + 1, (256,), generator=g)
    tokens, lengths = tokens.to(device), lengths.to(device)
    with d16.scoring():
        tables = d16._tables(d16._pad(tokens))
    if device.type == "cpu":
        expected = {"lookup tables": [True] * 12, "products": [False] * 12}.get(pooling, [w <= 10 for w in d16.widths])
        assert [t is not None for t in tables] == expected
        assert all(t.dtype == torch.float32 for t in tables if t is not None)
    z32, z16 = d32.score(tokens, lengths), d16.score(tokens, lengths)
    assert z16.dtype == torch.float32 and not torch.equal(z16, z32)  # it does run in another precision
    assert float((torch.sigmoid(z16) - torch.sigmoid(z32)).abs().max()) < 1e-2
    changed = (z16 > 0) != (z32 > 0)
    assert bool((z32[changed].abs() < 0.05).all())
    with torch.no_grad():  # forward (outside score) is float32 whatever score_dtype says
        assert torch.equal(d16.eval()(tokens, lengths), d32.eval()(tokens, lengths))
    with pytest.raises(ValueError, match="score_dtype must be one of"):
        discriminators.make("cnn", vocab_size=V, score_dtype="float16")


def test_load_optimizer_state_copies_and_can_make_a_state_capturable():
    """``load_optimizer_state`` loads a copy (stepping the loaded optimizer leaves the given dict
    as it was), and ``capturable=`` replaces the saved groups' setting before loading (torch
    then moves the step counts to the parameters' device, which on the CPU is where they were),
    leaving the given dict's setting alone."""
    from discriminators.base import load_optimizer_state

    w = torch.nn.Parameter(torch.ones(3))
    plain = torch.optim.Adam([w], lr=0.1)
    w.grad = torch.ones(3)
    plain.step()
    saved = plain.state_dict()
    before = {k: v.clone() for k, v in saved["state"][0].items()}
    other = torch.optim.Adam([w], lr=0.1)
    load_optimizer_state(other, saved)
    other.step()
    assert all(torch.equal(saved["state"][0][k], v) for k, v in before.items())
    assert saved["param_groups"][0]["capturable"] is False
    captured = torch.optim.Adam([w], lr=0.1)
    load_optimizer_state(captured, saved, capturable=True)
    assert captured.param_groups[0]["capturable"] is True and saved["param_groups"][0]["capturable"] is False
    step = captured.state[w]["step"]
    assert step.dtype == torch.float32 and step.device == w.device and float(step) == 1.0


def test_the_replayed_share_of_the_fake_side_is_drawn_from_the_buffer_of_past_fakes():
    """D1: with a buffer of the first call's fakes and replay_fraction 0.5, the second call trains on
    30 of its own 60 fakes and 30 rows of the buffer (the suite checks only n_replayed == 30)."""
    import discriminators
    from discriminators import DiscriminatorTrainer

    d = discriminators.make("rnn", vocab_size=50, max_length=8, emb_dim=32, hidden=64)
    t = DiscriminatorTrainer(d, lr=1e-2, batch_size=1000, seed=0, replay_size=80, replay_fraction=0.5)
    real, real_len = _toy(100, 0)
    old, old_len = _toy(60, 1, shift=1)
    new, new_len = _toy(60, 2, shift=1)
    old[:, 0], new[:, 0] = 49, 47  # the first token tells a buffered fake from a fresh one
    t.step(real, real_len, old, old_len)
    seen = []
    objective = t._objective
    t._objective = lambda tok, ln, tg: (seen.append((tok.clone(), tg.clone())), objective(tok, ln, tg))[1]
    assert t.step(real, real_len, new, new_len)["n_replayed"] == 30
    tok, tg = seen[0]
    first = tok[tg == 0, 0].tolist()
    assert len(first) == 60 and first.count(47) == 30 and first.count(49) == 30
