"""The discriminator's GPU paths: the update replayed as a CUDA graph (discriminators.graphed)
and the CNN's pooling of every width with one convolution.

On the CPU the same update body runs uncaptured (``capture=False``): it must train exactly as the
eager trainer does, and its end-of-call divergence check must restore the call's starting state.
With ``--device cuda`` the captured trainer is compared with the eager one on the GPU.
"""
from __future__ import annotations

import io
import warnings

import pytest
import torch
import torch.nn.functional as F

import discriminators
from discriminators.base import DivergenceError
from discriminators import cnn
from discriminators.cnn import _ConvolutionProduct
from discriminators.graphed import GraphedUpdates, UpdateBody
from discriminators.trainer import DiscriminatorTrainer

V, T = 40, 12


def _data(seed: int):
    g = torch.Generator().manual_seed(seed)
    real = torch.randint(0, V // 2, (70, T), generator=g)
    fake = torch.randint(V // 2, V, (70, T), generator=g)
    real_len = torch.randint(1, T + 1, (70,), generator=g)  # shorter than the widest window too
    fake_len = torch.randint(1, T + 1, (70,), generator=g)
    return real, real_len, fake, fake_len


def _trainer(device, *, cuda_graph, dropout=0.25, lr=1e-3, uncaptured=False, seed=0, compile=False, one_conv=None,
             precision="float32"):
    torch.manual_seed(7)
    d = discriminators.CNNDiscriminator(V, T, size="small", widths=(1, 2, 3, 5, 8), dropout=dropout).to(device)
    d.one_conv = one_conv
    tr = DiscriminatorTrainer(d, lr=lr, batch_size=16, seed=seed, device=device, cuda_graph=cuda_graph,
                              max_grad_norm=5.0, compile=compile and not uncaptured, precision=precision)
    if uncaptured:  # the graph's update body, run directly: deferred checks, no capture
        body = UpdateBody(d, tr.optimizer, tr._stats, tr.max_grad_norm, compile=compile, precision=precision)
        tr._graphed = GraphedUpdates(body, tr.optimizer, capture=False)
    return tr


def _params(tr):
    return {k: v.detach().cpu().clone() for k, v in tr.discriminator.state_dict().items()}


def _close(a, b, tol):
    for k in a:
        assert torch.allclose(a[k], b[k], atol=tol, rtol=0), (k, (a[k] - b[k]).abs().max())


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_graph_update_body_trains_as_the_eager_update(precision):
    """Same seed, same data (140 rows: 8 full minibatches and one of 12, twice): the uncaptured
    body of the graph path reaches the eager trainer's weights and statistics, in float32 and in
    bfloat16 mixed precision."""
    eager = _trainer("cpu", cuda_graph=False, precision=precision)
    body = _trainer("cpu", cuda_graph=False, uncaptured=True, precision=precision)
    for call in range(2):
        torch.manual_seed(call)  # dropout draws from the global generator on the CPU
        a = eager.step(*_data(call), k=2)
        torch.manual_seed(call)
        b = body.step(*_data(call), k=2)
        assert a.keys() == b.keys() and a["steps"] == b["steps"] == 18 and a["total_steps"] == b["total_steps"]
        for key in ("loss", "reg", "acc_real", "acc_fake"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    _close(_params(eager), _params(body), 1e-6)


def test_the_compiled_update_body_trains_as_the_eager_update():
    """``compile=True`` (torch.compile of the body's forward, loss and statistics) trains as the
    eager trainer on the CPU, dropout included (inductor draws from torch's generator as eager
    code does): the same weights and statistics after two calls with two minibatch shapes. Both
    pool all widths at once, the body's path on a GPU."""
    eager = _trainer("cpu", cuda_graph=False, one_conv=True)
    body = _trainer("cpu", cuda_graph=False, uncaptured=True, compile=True, one_conv=True)
    assert body._graphed.body._loss is not body._graphed.body._loss_and_stats  # compiled
    for call in range(2):
        torch.manual_seed(call)
        a = eager.step(*_data(call), k=1)
        torch.manual_seed(call)
        b = body.step(*_data(call), k=1)
        for key in ("loss", "reg", "acc_real", "acc_fake"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    _close(_params(eager), _params(body), 1e-5)


def test_a_diverging_graph_call_restores_its_starting_state_and_raises():
    """A learning rate of 1e30 makes the logits infinite after one update: the call raises
    DivergenceError and leaves the weights, the optimizer state and the update count as they
    were before it (the eager trainer raises too, before its first bad update)."""
    tr = _trainer("cpu", cuda_graph=False, uncaptured=True)
    tr.step(*_data(0), k=1)
    before, steps = _params(tr), tr.total_steps
    state = [{k: v.clone() for k, v in s.items()} for s in tr.optimizer.state.values()]
    for g in tr.optimizer.param_groups:
        g["lr"] = 1e30
    with pytest.raises(DivergenceError, match="restored"):
        tr.step(*_data(1), k=1)
    _close(before, _params(tr), 0.0)
    assert tr.total_steps == steps
    for saved, now in zip(state, tr.optimizer.state.values(), strict=True):
        assert saved.keys() == now.keys() and all(torch.equal(saved[k], now[k]) for k in saved)  # step, moments
    eager = _trainer("cpu", cuda_graph=False, lr=1e30)
    with pytest.raises(DivergenceError, match="update"):
        eager.step(*_data(1), k=1)


@pytest.mark.device
@pytest.mark.parametrize("T", [3, 12, 20])
def test_one_convolution_pools_as_one_convolution_per_width(device, T):
    """The CNN's all-widths pooling (one matrix product of unfolded windows, its path off the CPU)
    equals one convolution per width, logits and gradients, on sequences shorter than the widest
    window (8, and SeqGAN's 20) and padded ones."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(T)
    tokens = torch.randint(0, V, (33, T), generator=g).to(device)
    lengths = torch.randint(1, T + 1, (33,), generator=g).to(device)
    out = {}
    for one in (False, True):
        torch.manual_seed(0)
        d = discriminators.CNNDiscriminator(V, 20, size="small", widths=(1, 2, 3, 8, 20), dropout=0.0).to(device)
        d.one_conv = one
        logits = d(tokens, lengths)
        logits.pow(2).sum().backward()
        out[one] = (logits.detach(), {k: p.grad.clone() for k, p in d.named_parameters()})
    assert torch.allclose(out[True][0], out[False][0], atol=1e-5, rtol=0)
    for k, grad in out[False][1].items():
        assert torch.allclose(out[True][1][k], grad, atol=1e-4, rtol=1e-4), k


@pytest.mark.device
def test_cuda_graph_is_refused_where_it_cannot_run(device):
    if device.type != "cuda":
        with pytest.raises(ValueError, match="needs a CUDA device"):
            _trainer(device, cuda_graph=True)
        with pytest.raises(ValueError, match="compile=True compiles the captured CUDA update"):
            _trainer(device, cuda_graph=None, compile=True)
        assert not _trainer(device, cuda_graph=None).cuda_graph  # the default: off the GPU, eager
        return
    assert _trainer(device, cuda_graph=None).cuda_graph  # the default on a GPU, for the CNN
    rnn = discriminators.make("rnn", vocab_size=V, max_length=T).to(device)
    with pytest.raises(ValueError, match="graph_capturable"):
        DiscriminatorTrainer(rnn, cuda_graph=True)
    assert not DiscriminatorTrainer(rnn).cuda_graph  # per-prefix training stays eager


@pytest.mark.device
@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_the_captured_update_trains_as_the_eager_update_on_cuda(device, dropout):
    """On a GPU: captured graphs (after their warm-up updates) and eager updates reach the same
    weights and statistics from the same state, dropout included (the replays draw from the same
    generator offsets); a state saved mid-way resumes into a fresh captured trainer identically."""
    if device.type != "cuda":
        pytest.skip("CUDA graphs need a CUDA device")
    runs = {}
    for graph in (False, True):
        torch.cuda.manual_seed(3)
        tr = _trainer(device, cuda_graph=graph, dropout=dropout)
        stats = [tr.step(*_data(call), k=2) for call in range(3)]
        runs[graph] = (tr, stats)
    (eager, a), (captured, b) = runs[False], runs[True]
    assert captured.cuda_graph and captured._graphed is not None and captured._graphed.graphs
    for sa, sb in zip(a, b, strict=True):
        for key in ("loss", "reg", "acc_real", "acc_fake"):
            assert sa[key] == pytest.approx(sb[key], abs=1e-5), key
    _close(_params(eager), _params(captured), 1e-5)

    buf = io.BytesIO()
    torch.save({"trainer": captured.state_dict(), "rng": torch.cuda.get_rng_state(device)}, buf)
    after = captured.step(*_data(9), k=1)
    final = _params(captured)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    # into a fresh trainer (eager warm-up, then its own graphs) and into the same one, whose
    # graphs must be dropped: loading replaces the optimizer's state tensors they update
    for resumed in (_trainer(device, cuda_graph=True, dropout=dropout, seed=5), captured):
        resumed.load_state_dict(saved["trainer"])
        torch.cuda.set_rng_state(saved["rng"], device)
        again = resumed.step(*_data(9), k=1)
        assert again["loss"] == pytest.approx(after["loss"], abs=1e-5)
        _close(final, _params(resumed), 1e-5)


@pytest.mark.device
def test_the_compiled_captured_update_trains_as_the_eager_update_on_cuda(device):
    """On a GPU, ``compile=True``: captured compiled updates reach the eager trainer's weights
    without dropout; with dropout (other draws than eager's) two runs from one seed agree in
    float32, and to bfloat16's rounding in bfloat16, which learns the task too."""
    if device.type != "cuda":
        pytest.skip("the compiled update is the captured CUDA update's")
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = flags[0].allow_tf32, flags[1].allow_tf32
    try:  # torch's default: TF32 convolutions, IEEE products, which compiled the window product follows
        flags[0].allow_tf32, flags[1].allow_tf32 = False, True
        with pytest.warns(UserWarning, match="allow TF32 matrix products"):
            _trainer(device, cuda_graph=True, compile=True)
    finally:
        flags[0].allow_tf32, flags[1].allow_tf32 = before
    runs = {}
    for dropout, compile, precision in ((0.0, False, "float32"), (0.0, True, "float32"), (0.25, True, "float32"),
                                        (0.25, True, "float32"), (0.25, True, "bfloat16"), (0.25, True, "bfloat16")):
        torch.cuda.manual_seed(3)
        tr = _trainer(device, cuda_graph=True, compile=compile, dropout=dropout, precision=precision)
        stats = [tr.step(*_data(call), k=2) for call in range(3)]
        runs.setdefault((dropout, precision), []).append((_params(tr), stats[-1]))
    for (dropout, precision), ((pa, sa), (pb, sb)) in runs.items():
        # compiled bfloat16 runs agree to its rounding only: the compiled embedding backward
        # accumulates with atomic adds, whose order varies (5e-4 measured on an H200)
        tol = 5e-3 if precision == "bfloat16" else 1e-4
        assert sa["loss"] == pytest.approx(sb["loss"], abs=tol)
        _close(pa, pb, tol)
    assert sa["acc_real"] > 0.9 and sa["acc_fake"] > 0.9  # bfloat16 learns the task (disjoint token halves)


@pytest.mark.device
def test_a_diverging_captured_call_restores_its_starting_state_on_cuda(device):
    if device.type != "cuda":
        pytest.skip("CUDA graphs need a CUDA device")
    tr = _trainer(device, cuda_graph=True)
    tr.step(*_data(0), k=2)  # warm-up, capture and replays
    before, steps = _params(tr), tr.total_steps
    for g in tr.optimizer.param_groups:
        g["lr"] = 1e30  # a captured Adam keeps a float lr as a constant: recapture
    tr._graphed.reset()
    with pytest.raises(DivergenceError, match="restored"):
        tr.step(*_data(1), k=2)
    _close(before, _params(tr), 0.0)
    assert tr.total_steps == steps


@pytest.mark.device
def test_the_window_product_is_a_linear_map_in_the_convolutions_precision(device):
    """``_ConvolutionProduct`` (the all-widths pooling's product where cuDNN's TF32 setting and the
    matrix products' differ) has F.linear's values and gradients (float64 gradcheck), and runs its
    products, backward included, with the matmul TF32 flag set to cuDNN's, restoring it after."""
    g = torch.Generator().manual_seed(0)
    w, x, b = (torch.randn(*shape, generator=g, dtype=torch.float64).to(device).requires_grad_()
               for shape in ((5, 12), (7, 12), (5,)))
    assert torch.autograd.gradcheck(_ConvolutionProduct.apply, (x, w, b))
    assert torch.allclose(_ConvolutionProduct.apply(x, w, b), F.linear(x, w, b))
    seen = []
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = flags[0].allow_tf32, flags[1].allow_tf32
    try:
        flags[0].allow_tf32, flags[1].allow_tf32 = False, True
        with cnn._products_as_convolutions():
            seen.append(flags[0].allow_tf32)
        assert seen == [True] and flags[0].allow_tf32 is False
        with pytest.raises(RuntimeError), cnn._products_as_convolutions():
            raise RuntimeError
        assert flags[0].allow_tf32 is False
        if device.type == "cuda":  # the route taken, and TF32's rounding only
            x32, w32, b32 = (t.detach().float().requires_grad_() for t in (x, w, b))
            out = cnn._window_product(x32, w32, b32)
            assert out.grad_fn is not None and "ConvolutionProduct" in type(out.grad_fn).__name__
            out.sum().backward()
            assert flags[0].allow_tf32 is False
            assert torch.allclose(out, F.linear(x, w, b).float(), atol=1e-2, rtol=1e-2)
    finally:
        flags[0].allow_tf32, flags[1].allow_tf32 = before


def _mle_agent(device):
    import agents
    from textgym.data import OracleData
    from textgym.oracle import OracleLSTM

    data = OracleData(OracleLSTM(vocab_size=V, max_length=T, seed=3), max_length=T, n_train=150, n_test=20)
    return agents.make("mle", data, dict(mle_epochs=3, batch_size=16, val_size=0, patience=0), device=device, seed=0)


def test_the_mle_update_body_trains_as_the_checked_mle_pass():
    """The body that MLE's updates replay as CUDA graphs (on a GPU), run uncaptured on the CPU
    through the deferred pass (checks summed, read once): the same generator, optimizer state and
    per-token NLL as the CPU's checked pass, over two epochs of 9 full minibatches and one of 6."""
    checked, body = _mle_agent("cpu"), _mle_agent("cpu")
    body._mle_graphed = GraphedUpdates(body._mle_update, body.mle_opt, capture=False)
    for _ in range(2):
        a = checked.mle_epoch()
        perm = torch.randperm(body.train_tokens.shape[0], generator=body.data_rng)
        b = body._mle_pass_deferred([perm[i : i + 16] for i in range(0, perm.numel(), 16)])
        assert a["nll_train"] == pytest.approx(b["nll_train"], abs=1e-6)
    _close(checked.generator.state_dict(), body.generator.state_dict(), 1e-6)
    for sa, sb in zip(checked.mle_opt.state.values(), body.mle_opt.state.values(), strict=True):
        assert torch.allclose(sa["exp_avg"], sb["exp_avg"], atol=1e-7) and float(sa["step"]) == float(sb["step"]) == 20


@pytest.mark.device
def test_the_captured_mle_epochs_train_as_eager_ones_and_resume_from_a_cpu_checkpoint(device):
    """On a GPU: MLE epochs replayed as captured graphs equal the same updates run eagerly, and
    a state saved on the CPU (a non-capturable Adam, its step counts on the CPU) loads into CUDA
    agents that have already trained (the captured one holds graphs of its replaced optimizer
    state), whose captured updates then match the eager agent's."""
    if device.type != "cuda":
        assert _mle_agent(device)._mle_graphs() is None  # the checked pass, no graphs off CUDA
        return
    cpu = _mle_agent("cpu")
    cpu.train_iteration()
    saved = cpu.state_dict()
    # the sampling generator's state is device-specific (a CUDA generator refuses a CPU one's, as
    # checkpoints refuse another device type): what is carried over here is the weights and Adam
    saved["sample_rng"] = torch.Generator(device).manual_seed(0).get_state()
    captured, eager = _mle_agent(device), _mle_agent(device)
    eager._mle_graphed = GraphedUpdates(eager._mle_update, eager.mle_opt, capture=False)
    for agent in (captured, eager):
        agent.train_iteration()  # the captured agent captures its graphs here
        agent.load_state_dict(saved)
        agent.stats = [agent.train_iteration() for _ in range(2)]
    assert captured._mle_graphs() is not None and captured._mle_graphs().graphs  # it did capture
    for sa, sb in zip(captured.stats, eager.stats, strict=True):
        assert sa["nll_train"] == pytest.approx(sb["nll_train"], abs=1e-5)
    _close({k: v.cpu() for k, v in captured.generator.state_dict().items()},
           {k: v.cpu() for k, v in eager.generator.state_dict().items()}, 1e-5)


def test_without_waits_reports_work_that_waits_for_the_device(monkeypatch):
    """The check before a capture: the work's result when it makes no wait; False and a warning
    when it waits (as torch's sync debug mode reports it); other errors pass through; the mode
    is restored in every case. (The mode itself is CUDA's; here its switch is recorded.)"""
    from discriminators.graphed import without_waits

    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: "warn")  # the user's own setting
    assert without_waits(lambda: 7, "the work") == (True, 7)

    def waits():
        raise RuntimeError("called a synchronizing CUDA operation")

    with pytest.warns(UserWarning, match="the work waits for the device"):
        assert without_waits(waits, "the work") == (False, None)

    def fails():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        without_waits(fails, "the work")
    assert modes == ["error", "warn"] * 3


class _ReportsCuda(torch.Tensor):
    """A CPU tensor that says it is on CUDA: what the host-side checks see on a GPU."""

    @property
    def is_cuda(self):
        return True

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


def test_a_rehearsal_skips_the_host_side_checks_as_a_capture_does(monkeypatch):
    """Inside ``rehearsing()`` (the warm-up before a capture) the checks that read CUDA values on
    the host skip themselves, as inside a capture; outside, they check."""
    from agents.generator import Generator
    from discriminators.base import capturing, rehearsing

    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    gen = Generator(10, 4, seed=0)
    d = discriminators.CNNDiscriminator(10, 4, size="small")
    bad = torch.tensor([[3, 11, 2, 10]]).as_subclass(_ReportsCuda)  # 11 is outside [0, pad id 10]
    nan = torch.tensor([0.5, float("nan")]).as_subclass(_ReportsCuda)
    with pytest.raises(ValueError):
        gen._check_tokens(bad)
    with pytest.raises(DivergenceError):
        d.check_output(nan)
    with rehearsing():
        assert capturing(bad) and not capturing(torch.tensor([1]))  # CPU tensors are never skipped
        gen._check_tokens(bad)
        d.check_output(nan)
        with rehearsing():
            pass
        assert capturing(bad)  # a nested block restores the outer state
    assert not capturing(bad)


def test_warm_up_runs_the_body_as_it_will_be_captured(monkeypatch):
    """Every warm-up call runs rehearsed; when the checked last call waits for the device, the
    work runs again eagerly with its checks (not rehearsed)."""
    import contextlib

    from discriminators import graphed
    from discriminators.base import capturing

    class _Stream:
        def __init__(self, *args):
            pass

        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "Stream", _Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: "default")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    probe = torch.zeros(1).as_subclass(_ReportsCuda)
    seen = []

    def body():
        seen.append(capturing(probe))
        return len(seen)

    assert graphed.warm_up(body, torch.device("cpu"), False, "the body") == (True, 1)
    assert graphed.warm_up(body, torch.device("cpu"), True, "the body") == (True, 2)
    assert seen == [True, True]

    def waits():
        seen.append(capturing(probe))
        if len(seen) == 3:
            raise RuntimeError("called a synchronizing CUDA operation")
        return "eager"

    with pytest.warns(UserWarning, match="the body waits for the device"):
        assert graphed.warm_up(waits, torch.device("cpu"), True, "the body") == (False, "eager")
    assert seen[2:] == [True, False]

    def steps_a_capturable_adam():  # as torch.optim warns at a capturable optimizer's first uncaptured step
        warnings.warn("This instance was constructed with capturable=True or some of all the param_groups came with "
                      "capturable=True, but step() is running without CUDA graph capture. ...", UserWarning)
        return "stepped"

    with warnings.catch_warnings(record=True) as caught:  # every CUDA run printed it (a study kept it in every record)
        warnings.simplefilter("always")
        assert graphed.warm_up(steps_a_capturable_adam, torch.device("cpu"), False, "the update") == (True, "stepped")
    assert caught == []


def test_the_mc_reward_turns_graphs_off_for_good_once_a_chunk_waits(monkeypatch):
    """A chunk whose checked warm-up waits for the device turns ``cuda_graph`` off: the rest of
    that call and every later call run eagerly, nothing is captured, and the rewards equal an
    eager reward's from the same draws. (CUDA's objects are stand-ins that record captures.)"""
    import contextlib

    from agents.generator import Generator
    from textgym import rewards
    from textgym.rewards import MCReward

    captures = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: captures.append("graph"))
    calls = {"n": 0}

    def warm_up(fn, device, last, what):  # the last warm-up of every shape reports a wait
        calls["n"] += 1
        return (not last), fn()

    monkeypatch.setattr(rewards, "warm_up", warm_up)
    gen = Generator(50, 6, eos_id=7, seed=0)
    d = discriminators.CNNDiscriminator(50, 6, size="small")
    tok, _ = gen.sample_with_lengths(4, generator=torch.Generator().manual_seed(0))
    graphed = MCReward(d, "prob", rollout_policy=gen, n_rollouts=3, chunk_rows=12, cuda_graph=True).bind(50, 7, 50)
    eager = MCReward(d, "prob", rollout_policy=gen, n_rollouts=3, chunk_rows=12).bind(50, 7, 50)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for m in (9, 9, 10, 9):  # chunks of 4 prefixes: 4, 4, 1 (and 4, 4, 2)
        rows, plen = tok[torch.arange(m) % 4], torch.arange(m) % 5 + 1
        out = graphed.values(rows.as_subclass(_ReportsCuda), plen.as_subclass(_ReportsCuda), g1)
        assert torch.equal(out, eager.values(rows, plen, g2))
    assert not graphed.cuda_graph and captures == [] and not graphed._graphs
    assert calls["n"] == 2  # a first warm-up, then the checked one that waits; nothing after


def test_graphed_updates_stay_eager_and_free_their_graphs_once_a_shape_waits(monkeypatch):
    """A minibatch shape whose checked warm-up waits for the device turns capture off for good:
    every later update runs eagerly (none is lost) and the graphs of other shapes are freed.
    (CUDA's graph objects are stand-ins.)"""
    import contextlib

    from discriminators import graphed

    class _Graph:
        def replay(self):
            calls.append("replay")

    calls = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _Graph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g: contextlib.nullcontext())
    monkeypatch.setattr(graphed, "warm_up", lambda fn, device, last, what: (fn(), (not (last and waits), None))[1])
    w = torch.nn.Parameter(torch.zeros(1))
    runner = GraphedUpdates(lambda rows: calls.append(rows.shape[0]), torch.optim.Adam([w]))
    data = torch.zeros(8, 3, dtype=torch.long)
    waits = False
    for _ in range(graphed.WARMUP + 1):  # shape (2, 3): warm-ups, then its capture
        runner.run((data,), torch.arange(2))
    assert list(runner.graphs) == [(2, 3)]
    waits = True
    for _ in range(graphed.WARMUP + 2):  # shape (4, 3): its checked warm-up waits
        runner.run((data,), torch.arange(4))
    runner.run((data,), torch.arange(2))
    assert not runner.capture and not runner.graphs
    # the warm-ups, the stand-in capture (which runs the body) and its first replay; then every
    # update of either shape runs eagerly
    assert calls == [2] * (graphed.WARMUP + 1) + ["replay"] + [4] * (graphed.WARMUP + 2) + [2]
