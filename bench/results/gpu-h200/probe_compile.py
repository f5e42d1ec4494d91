"""A GPU probe, kept as it ran: is the captured update of SeqGAN's CNN discriminator (64 sequences
of 20 tokens, V = 5000, SeqGAN's CNN, a capturable fused Adam) faster when its forward and loss
(and so their backward) are compiled by ``torch.compile``, which fuses the element-wise kernels
that make up most of the update's ~200 kernels?

For each matrix-product precision (``ieee``: IEEE float32 everywhere; ``tf32``: TF32 products and
convolutions; ``default``: torch's default, TF32 convolutions and IEEE products) and for eager
or compiled forward, it prints the milliseconds per captured update (600 replays after 5 warm-up
replays), the compile time, the CUDA kernels of one eager (uncaptured) update and the largest
parameter difference after 20 updates against the eager body. On a CPU (a dry run of the
script) it times the uncaptured bodies. Run from the repository root.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
import discriminators  # noqa: E402

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CUDA = dev.type == "cuda"
V, T, B = 5000, 20, 64
N_REPLAY = 600 if CUDA else 20
res = {}


def out(k, v):
    res[k] = v
    print(k, v, flush=True)


g = torch.Generator().manual_seed(0)
M = 20000
toks = torch.randint(0, V, (M, T), generator=g).to(dev)
lens = torch.randint(5, T + 1, (M,), generator=g).to(dev)
y = (torch.arange(M, device=dev) < M // 2).float()


def make():
    torch.manual_seed(0)
    d = discriminators.CNNDiscriminator(V, T).to(dev).train()
    d.one_conv = True  # the GPU's pooling (one window product for all widths), also in the CPU's dry run
    opt = torch.optim.Adam(d.parameters(), lr=1e-4, capturable=CUDA, fused=CUDA)
    return d, opt


def loss_fn(d, st, sl, sy):
    valid = torch.arange(T, device=st.device)[None, :] < sl[:, None]
    logits = d.head(d.encode(st, sl, valid))
    return F.binary_cross_entropy_with_logits(logits, sy) + d.regularization()


def body(d, opt, fn):
    def step(st, sl, sy):
        opt.zero_grad(set_to_none=False)
        fn(d, st, sl, sy).backward()
        opt.step()
    return step


def run(kind):
    d, opt = make()
    fn = loss_fn
    if kind == "compiled":
        import torch._inductor.config as ic
        ic.fallback_random = True  # dropout from torch's own generator: graph-safe, as eager
        fn = torch.compile(loss_fn, dynamic=False)
    step = body(d, opt, fn)
    t0 = time.perf_counter()
    side = torch.cuda.Stream() if CUDA else None
    if CUDA:
        side.wait_stream(torch.cuda.current_stream())
    for i in range(3):
        if CUDA:
            with torch.cuda.stream(side):
                step(toks[i * B:(i + 1) * B], lens[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
        else:
            step(toks[i * B:(i + 1) * B], lens[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
    if CUDA:
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    return d, opt, step, warm_s


def params_after(kind, n=20):
    d, opt, step, _ = run(kind)
    torch.manual_seed(1)
    for i in range(3, 3 + n):
        step(toks[i * B:(i + 1) * B], lens[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
    return [p.detach().clone() for p in d.parameters()]


def kernels(step):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(toks[:B], lens[:B], y[:B])
        torch.cuda.synchronize()
    ev = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return len(ev), round(sum(e.device_time_total for e in ev), 1)


def time_kind(kind):
    d, opt, step, warm_s = run(kind)
    if not CUDA:
        t = time.perf_counter()
        for i in range(N_REPLAY):
            j = (i * 7) % (M // B)
            step(toks[j * B:(j + 1) * B], lens[j * B:(j + 1) * B], y[j * B:(j + 1) * B])
        return (time.perf_counter() - t) / N_REPLAY * 1e3, warm_s, None
        # no capture on the CPU
    kern = kernels(step)
    st, sl, sy = toks[:B].clone(), lens[:B].clone(), y[:B].clone()
    sidx = torch.zeros(B, dtype=torch.long, device=dev)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        torch.index_select(toks, 0, sidx, out=st)
        torch.index_select(lens, 0, sidx, out=sl)
        torch.index_select(y, 0, sidx, out=sy)
        step(st, sl, sy)
    perm = torch.randint(0, M, (N_REPLAY + 5, B), device=dev)
    for i in range(5):
        sidx.copy_(perm[i])
        graph.replay()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(5, 5 + N_REPLAY):
        sidx.copy_(perm[i])
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / N_REPLAY * 1e3, warm_s, kern


def main():
    out("device", torch.cuda.get_device_name(0) if CUDA else "cpu")
    out("torch", torch.__version__)
    try:
        import triton
        out("triton", triton.__version__)
    except ImportError as exc:
        out("triton", f"missing: {exc}")
    modes = {"ieee": (False, False), "tf32": (True, True), "default": (False, True)}
    for mode, (mm, cudnn) in modes.items():
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = mm, cudnn
        if mode != "default":
            try:
                a, b = params_after("eager"), params_after("compiled")
                out(f"{mode}/max_param_diff_20_updates", max(float((x - z).abs().max()) for x, z in zip(a, b)))
            except Exception as exc:  # noqa: BLE001 - a probe reports and goes on
                out(f"{mode}/param_check_error", repr(exc)[:300])
        for rnd in range(2):
            for kind in ("eager", "compiled"):
                try:
                    ms, warm_s, kern = time_kind(kind)
                    out(f"r{rnd}/{mode}/{kind}_ms", round(ms, 4))
                    if rnd == 0:
                        out(f"{mode}/{kind}_warmup_s", round(warm_s, 1))
                        out(f"{mode}/{kind}_kernels_gpu_us", kern)
                except Exception as exc:  # noqa: BLE001
                    out(f"r{rnd}/{mode}/{kind}_error", repr(exc)[:300])
            torch._dynamo.reset()


if __name__ == "__main__":
    try:
        main()
    finally:
        print("PROBE", json.dumps(res), flush=True)
