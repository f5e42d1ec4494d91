"""textgym.sampling: the inverse-CDF sampler every model draws through, against the softmax."""
from __future__ import annotations

import pytest
import torch

from textgym.oracle import OracleLSTM
from textgym.sampling import exp_safe_bound, linear_log_softmax, sample_logits


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.6])
@pytest.mark.parametrize("use_bound", [False, True])
def test_draws_follow_the_tempered_softmax(temperature, use_bound):
    logits = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.5, -3.0])
    n = 200_000
    g = torch.Generator().manual_seed(0)
    bound = float(logits.abs().max()) if use_bound else None
    ids = sample_logits(logits.expand(n, -1).clone(), temperature, g, bound=bound)
    freq = torch.bincount(ids, minlength=6).double() / n
    p = torch.softmax(logits.double() / temperature, 0)
    sigma = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() <= 5 * sigma + 1e-9).all()), (freq, p)


def test_unshifted_path_draws_what_the_softmax_path_draws():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(512, 5000, generator=g) * 8
    u = torch.rand(512, 1, generator=g)
    bound = float(logits.abs().max())
    assert bound < exp_safe_bound(5000)
    safe = sample_logits(logits.clone(), u=u)
    fast = sample_logits(logits.clone(), u=u, bound=bound)
    assert float((safe == fast).float().mean()) >= 0.998  # only float rounding at a bin edge may differ


def test_a_bound_too_large_for_exp_falls_back_to_the_softmax():
    logits = torch.tensor([[-200.0, 200.0, 0.0]]).expand(100, -1).clone()
    ids = sample_logits(logits, 1.0, torch.Generator().manual_seed(0), bound=200.0)
    assert bool((ids == 1).all())  # exp(200) would overflow: the shifted softmax is used
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, 0.0)


def test_oracle_logit_bound_holds_at_the_corners_of_the_hidden_cube():
    oracle = OracleLSTM(vocab_size=300, max_length=5, seed=0)
    g = torch.Generator().manual_seed(2)
    corners = torch.randint(0, 2, (4096, oracle.hidden_dim), generator=g).float() * 2 - 1
    signs = torch.sign(oracle.Wo)  # the corner that maximizes each logit
    worst = torch.cat([corners, signs, -signs])
    assert float(oracle.logits(worst).abs().max()) <= oracle.logit_bound() * (1 + 1e-6)
    with torch.no_grad():
        oracle.bo.add_(1000.0)  # in-place change: the cached bound follows
    assert oracle.logit_bound() > 1000.0


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_log_softmax_matches_a_float64_log_softmax(monkeypatch, temperature, with_bias):
    import textgym.sampling as sampling_module

    g = torch.Generator().manual_seed(3)
    h = torch.rand(300, 32, generator=g) * 2 - 1
    w = torch.randn(5000, 32, generator=g)
    b = torch.randn(5000, generator=g) if with_bias else None
    y = torch.randint(0, 5000, (300,), generator=g)
    logits = h.double() @ w.double().t() + (b.double() if with_bias else 0)
    ref = torch.log_softmax(logits / temperature, 1).gather(1, y[:, None]).squeeze(1)
    fused = linear_log_softmax(h, w, b, y, temperature)
    monkeypatch.setattr(sampling_module, "_flash_log_normalizer", lambda h, w, b, t: None)  # the fallback path
    plain = linear_log_softmax(h, w, b, y, temperature)
    for out in (fused, plain):
        assert out.shape == (300,) and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-4)
    assert linear_log_softmax(h[:0], w, b, y[:0]).shape == (0,)
    with pytest.raises(ValueError, match="temperature"):
        linear_log_softmax(h, w, b, y, 0.0)


def test_this_torch_build_takes_the_fused_kernel():
    """The CPU scoring path checks the private flash-attention op once against a float64
    log-sum-exp; in the pinned torch it must pass (else scoring silently loses its speed)."""
    import textgym.sampling as sampling_module

    if getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None) is None:
        pytest.skip("this torch build has no CPU flash-attention kernel")
    h, w, b = torch.rand(5, 32), torch.randn(100, 32), torch.randn(100)
    lse = sampling_module._flash_log_normalizer(h, w, b, 1.0)
    assert sampling_module._FLASH_CHECKED is True and lse is not None
    torch.testing.assert_close(lse, torch.logsumexp(h @ w.t() + b, 1), rtol=0, atol=1e-4)
