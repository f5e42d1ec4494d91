"""textgym.sampling: the inverse-CDF sampler every model draws through, against the softmax."""
from __future__ import annotations

import pytest
import torch

from textgym.oracle import OracleLSTM
from textgym.sampling import (
    CDF_BLOCK,
    exp_safe_bound,
    flat_at_zeros,
    inverse_cdf,
    linear_log_softmax,
    linear_logit_bound,
    sample_logits,
    sample_past_prefix,
    sample_rows,
)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.6])
@pytest.mark.parametrize("use_bound", [False, True])
def test_draws_follow_the_tempered_softmax(temperature, use_bound, device):
    logits = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.5, -3.0])
    n = 200_000
    g = torch.Generator(device=device).manual_seed(0)
    bound = float(logits.abs().max()) if use_bound else None
    ids = sample_logits(logits.to(device).expand(n, -1).clone(), temperature, g, bound=bound)
    assert ids.device.type == device.type
    freq = torch.bincount(ids.cpu(), minlength=6).double() / n
    p = torch.softmax(logits.double() / temperature, 0)
    sigma = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() <= 5 * sigma + 1e-9).all()), (freq, p)


@pytest.mark.parametrize("V", [CDF_BLOCK * 3 + 8, CDF_BLOCK * 2, 5])
def test_two_level_inverse_cdf_follows_the_probabilities(V):
    """Blocks, a short last block, and fewer ids than one block: frequencies within 5 sigma."""
    g = torch.Generator().manual_seed(V)
    p = torch.softmax(torch.randn(V, generator=g, dtype=torch.float64) * 2, 0)
    n = 400_000
    ids = inverse_cdf(p.float().expand(n, -1).contiguous(), torch.rand(n, 1, generator=g))
    freq = torch.bincount(ids, minlength=V).double() / n
    sigma = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() <= 5 * sigma + 1e-9).all())


def test_a_scan_that_steps_at_a_zero_entry_is_flattened_so_no_search_draws_it():
    """A parallel scan's rounding can put a zero entry an ulp above (or below) its predecessor;
    the flattened sums give every zero entry its predecessor's value exactly."""
    p = torch.tensor([[0.0, 0.3, 0.0, 0.2, 0.0, 0.5]])
    cum = p.cumsum(1)
    cum[0, 2] = torch.nextafter(cum[0, 1], torch.tensor(2.0))  # an ulp above: a search could land on id 2
    cum[0, 4] = torch.nextafter(cum[0, 3], torch.tensor(0.0))  # an ulp below: not sorted
    flat = flat_at_zeros(cum, p > 0)
    assert flat[0, 2] == flat[0, 1] and flat[0, 4] == flat[0, 3] and flat[0, 0] == 0
    assert bool((flat[:, 1:] >= flat[:, :-1]).all())
    t = torch.linspace(0, float(flat[0, -1]), 10001)[:-1][None, :]
    ids = torch.searchsorted(flat, t, right=True)
    assert set(ids.unique().tolist()) == {1, 3, 5}
    stepped = torch.searchsorted(cum, cum[:, 1:2], right=True)  # the target at id 1's upper edge
    assert int(stepped) == 2 and int(torch.searchsorted(flat, cum[:, 1:2], right=True)) == 3


def test_two_level_inverse_cdf_is_the_one_level_search_and_never_draws_a_zero(device):
    """Against the obvious float64 cumsum + searchsorted (on the CPU); ids of probability 0
    (whole blocks, the short last block, the very last id) are never drawn, not even at u = 0
    or u -> 1."""
    g = torch.Generator().manual_seed(7)
    V = CDF_BLOCK * 5 + 3
    p = torch.rand(4096, V, generator=g) * (torch.rand(4096, V, generator=g) < 0.3)
    p[:, CDF_BLOCK : 2 * CDF_BLOCK] = 0  # a block of mass 0
    p[:, -3:] = 0  # the short last block
    p[::2, : 4 * CDF_BLOCK] = 0  # half the rows: all mass in one block
    p[::2, 4 * CDF_BLOCK + 5] = 1.0
    u = torch.rand(4096, 1, generator=g)
    u[:64] = 0.0
    u[64:128] = 1.0 - 2.0**-24  # the largest float below 1
    ids = inverse_cdf(p.to(device), u.to(device))
    assert ids.device.type == device.type
    # the flattened scan (a GPU's path) draws the same ids as the exact one
    assert torch.equal(inverse_cdf(p.to(device), u.to(device), exact_scan=False), ids)
    ids = ids.cpu()
    assert bool((p.gather(1, ids[:, None]) > 0).all())
    cdf = p.double().cumsum(1)
    ref = torch.searchsorted(cdf, u.double() * cdf[:, -1:], right=True).squeeze(1).clamp(max=V - 1)
    assert float((ids == ref).float().mean()) >= 0.999  # float rounding at a bin edge only


def test_unshifted_path_draws_what_the_softmax_path_draws(device):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(512, 5000, generator=g) * 8).to(device)
    u = torch.rand(512, 1, generator=g).to(device)
    bound = float(logits.abs().max())
    assert bound < exp_safe_bound(5000)
    safe = sample_logits(logits.clone(), u=u)
    fast = sample_logits(logits.clone(), u=u, bound=bound)
    assert float((safe == fast).float().mean()) >= 0.998  # only float rounding at a bin edge may differ


def test_a_bound_too_large_for_exp_falls_back_to_the_softmax(device):
    logits = torch.tensor([[-200.0, 200.0, 0.0]], device=device).expand(100, -1).clone()
    ids = sample_logits(logits, 1.0, torch.Generator(device=device).manual_seed(0), bound=200.0)
    assert ids.device.type == device.type
    assert bool((ids == 1).all())  # exp(200) would overflow: the shifted softmax is used
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, 0.0)


def test_oracle_logit_bound_holds_at_the_corners_of_the_hidden_cube(device):
    oracle = OracleLSTM(vocab_size=300, max_length=5, seed=0).to(device)
    g = torch.Generator(device=device).manual_seed(2)
    corners = torch.randint(0, 2, (4096, oracle.hidden_dim), generator=g, device=device).float() * 2 - 1
    signs = torch.sign(oracle.Wo)  # the corner that maximizes each logit
    worst = torch.cat([corners, signs, -signs])
    assert float(oracle.logits(worst).abs().max()) <= oracle.logit_bound() * (1 + 1e-6)
    with torch.no_grad():
        oracle.bo.add_(1000.0)  # in-place change: the cached bound follows
    assert oracle.logit_bound() > 1000.0


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_log_softmax_matches_a_float64_log_softmax(temperature, with_bias, dtype, device):
    """On ``device`` against a float64 log-softmax made on the CPU."""
    g = torch.Generator().manual_seed(3)
    h = torch.rand(300, 32, generator=g) * 2 - 1
    w = torch.randn(5000, 32, generator=g)
    b = torch.randn(5000, generator=g) if with_bias else None
    y = torch.randint(0, 5000, (300,), generator=g)
    logits = h.double() @ w.double().t() + (b.double() if with_bias else 0)
    ref = torch.log_softmax(logits / temperature, 1).gather(1, y[:, None]).squeeze(1)
    bound = linear_logit_bound(w, b)
    assert bound / temperature < exp_safe_bound(5000)  # so bound= takes the unshifted path
    h, w, b, y = h.to(device, dtype), w.to(device, dtype), None if b is None else b.to(device, dtype), y.to(device)
    shifted = linear_log_softmax(h, w, b, y, temperature)
    unshifted = linear_log_softmax(h, w, b, y, temperature, bound=bound)
    for out in (shifted, unshifted):
        assert out.shape == (300,) and out.dtype == dtype and out.device.type == device.type
        torch.testing.assert_close(out.cpu().double(), ref, rtol=0, atol=2e-4 if dtype == torch.float32 else 1e-9)
    assert linear_log_softmax(h[:0], w, b, y[:0]).shape == (0,)
    with pytest.raises(ValueError, match="temperature"):
        linear_log_softmax(h, w, b, y, 0.0)


def test_linear_log_softmax_shifts_when_the_bound_is_too_large_for_exp(device):
    """Logits of ±200 overflow exp in float32: a bound that says so (or none) must take the
    max-shifted path and stay finite and exact."""
    h = torch.tensor([[1.0], [-1.0], [0.5]])
    w = torch.tensor([[200.0], [-200.0], [0.0]])
    y = torch.tensor([0, 1, 2])
    ref = torch.log_softmax(h.double() @ w.double().t(), 1)[torch.arange(3), y]
    for bound in (None, 200.0):
        out = linear_log_softmax(h.to(device), w.to(device), None, y.to(device), bound=bound)
        assert bool(torch.isfinite(out).all()) and out.device.type == device.type
        torch.testing.assert_close(out.cpu().double(), ref, rtol=0, atol=1e-5)


@pytest.mark.device
@pytest.mark.parametrize("all_rows", [False, True])
def test_a_rollout_step_draws_past_the_prefix_and_keeps_the_prefix(all_rows, device):
    """Both ways of a rollout step (the CPU's search for the free rows, the GPU's draw for every
    row): rows still in their prefix keep their token; the others get the draw of their own row,
    which in the all-rows way is that row of one draw over every row."""
    g = torch.Generator(device=device).manual_seed(0)
    M, T, H, V = 12, 6, 8, 30
    h = torch.randn(M, H, generator=g, device=device)
    w, b = torch.randn(V, H, generator=g, device=device), torch.randn(V, generator=g, device=device)
    prefix = torch.arange(M, device=device) % T
    tokens = torch.full((M, T), 99, dtype=torch.long, device=device)
    t = 3
    sample_past_prefix(tokens, t, h, prefix, int(prefix.max()), w, b, 1.0, torch.Generator(device=device).manual_seed(5),
                       all_rows=all_rows)
    free = prefix <= t
    assert (tokens[~free, t] == 99).all() and ((tokens[free, t] >= 0) & (tokens[free, t] < V)).all()
    rows = torch.arange(M, device=device) if all_rows else free.nonzero().squeeze(1)
    ref = sample_rows(h[rows], w, b, 1.0, torch.Generator(device=device).manual_seed(5))
    assert torch.equal(tokens[free, t], ref[free[rows]] if all_rows else ref)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("model", ["oracle", "generator"])
def test_rollouts_complete_a_prefix_with_the_models_own_conditionals(model, temperature):
    """The completions that MC rewards score follow p(x_t | x_<t) at the rollout's temperature,
    against the teacher-forced log-probabilities of every possible next token (checked at the
    first free position and, given its most frequent token, at the next one)."""
    from agents.generator import Generator

    V, L, n = 50, 6, 40_000
    m = OracleLSTM(vocab_size=V, max_length=L, seed=3) if model == "oracle" else Generator(V, L, seed=3)
    if model == "generator":  # SeqGAN's N(0, 0.1) init is nearly uniform, where every temperature looks alike
        with torch.no_grad():
            m.out.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(4))
            m.out.bias.normal_(0, 2.0, generator=torch.Generator().manual_seed(5))
    prefix = torch.tensor([7, 11, 0, 0, 0, 0])
    out = m.rollout(prefix.expand(n, -1).clone(), torch.full((n,), 2), temperature=temperature,
                    generator=torch.Generator().manual_seed(0))
    assert (out[:, :2] == prefix[:2]).all()

    def conditional(head):  # p(v | head) for every v, teacher forced
        rows = torch.zeros(V, L, dtype=torch.long)
        rows[:, : len(head)] = torch.tensor(head)
        rows[:, len(head)] = torch.arange(V)
        with torch.no_grad():
            return m.log_probs(rows, temperature=temperature)[:, len(head)].double().exp()

    def check(draws, p):
        freq = torch.bincount(draws, minlength=V).double() / len(draws)
        assert bool(((freq - p).abs() <= 5 * (p * (1 - p) / len(draws)).sqrt() + 1e-9).all()), (freq, p)

    check(out[:, 2], conditional([7, 11]))
    a = int(torch.bincount(out[:, 2], minlength=V).argmax())
    check(out[out[:, 2] == a, 3], conditional([7, 11, a]))


def test_a_generator_on_another_gpu_of_the_same_type_is_replaced(monkeypatch):
    """torch refuses a ``cuda:0`` generator for draws on ``cuda:1``: ``generator_on`` compares
    devices with their index ("cuda" meaning the current one), not only their type. No GPU here:
    a stand-in generator on ``cuda:0`` and a recorder in place of the generator torch would make."""
    from types import SimpleNamespace

    from textgym import sampling
    from textgym.protocols import canonical_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert canonical_device("cuda") == torch.device("cuda:0") != canonical_device("cuda:1")
    assert canonical_device("cpu") == torch.device("cpu")
    on_gpu0 = SimpleNamespace(device=torch.device("cuda:0"))
    assert sampling.generator_on(on_gpu0, torch.device("cuda")) is on_gpu0
    assert sampling.generator_on(on_gpu0, torch.device("cuda:0")) is on_gpu0

    made = []

    class Recorder:
        def __init__(self, device):
            made.append(torch.device(device))

        def manual_seed(self, seed):
            return self

    monkeypatch.setattr(torch, "randint", lambda *args, **kwargs: torch.tensor([7]))
    monkeypatch.setattr(torch, "Generator", Recorder)
    replaced = sampling.generator_on(on_gpu0, torch.device("cuda:1"))
    assert isinstance(replaced, Recorder) and made == [torch.device("cuda:1")]


@pytest.mark.parametrize("tau", [-1.0, 0.0, float("nan")])
def test_a_temperature_that_is_not_positive_is_refused_on_every_path(tau):
    """A negative τ passed the fast path's bound test and drew from softmax(-z/|τ|); 0 divided by
    zero there; NaN passed every ``τ <= 0`` check."""
    from agents.generator import Generator

    oracle = OracleLSTM(vocab_size=20, max_length=4, seed=2)
    gen = Generator(20, 4, seed=0)
    h, w = torch.rand(3, 8), torch.randn(20, 8)
    calls = [lambda: sample_rows(h, w, None, tau, bound=linear_logit_bound(w, None)),
             lambda: sample_logits(torch.randn(3, 20), tau),
             lambda: linear_log_softmax(h, w, None, torch.zeros(3, dtype=torch.long), tau),
             lambda: oracle.sample(5, temperature=tau), lambda: gen.sample(5, temperature=tau),
             lambda: gen.log_probs(torch.zeros(2, 4, dtype=torch.long), temperature=tau)]
    for call in calls:
        with pytest.raises(ValueError, match="temperature must be > 0"):
            call()
