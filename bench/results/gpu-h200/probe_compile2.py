"""The second compile probe, kept as it ran: SeqGAN's CNN trained by the real trainer
(``DiscriminatorTrainer``, captured updates, 10,000 real + 10,000 fake random sequences of 20
tokens, V = 5000, one epoch = 313 updates) with TF32 products, milliseconds per update of the
second epoch, for: eager captured updates; ``compile=True``; ``compile=True`` with inductor's
``max_autotune`` (Triton templates for the matrix products, chosen by timing); and the GPU kernels
of one uncaptured compiled update (the top 25 by time). Run from the repository root.
"""
import json
import sys
import time

import torch

sys.path.insert(0, ".")
import discriminators  # noqa: E402

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
V, T, B, M = 5000, 20, 64, 10000
res = {}


def out(k, v):
    res[k] = v
    print(k, v, flush=True)


g = torch.Generator().manual_seed(0)
real = torch.randint(0, V // 2, (M, T), generator=g)
fake = torch.randint(V // 2, V, (M, T), generator=g)
rl = torch.randint(5, T + 1, (M,), generator=g)
fl = torch.randint(5, T + 1, (M,), generator=g)


def trainer(kind):
    torch.manual_seed(0)
    d = discriminators.CNNDiscriminator(V, T).to(dev)
    tr = discriminators.DiscriminatorTrainer(d, device=dev, compile=kind != "eager")
    if kind == "autotune":
        body = tr._graphed.body
        body._loss = torch.compile(body._loss_and_stats, dynamic=False,
                                   options={"fallback_random": True, "max_autotune": True})
    return tr


def timed(kind):
    tr = trainer(kind)
    t0 = time.perf_counter()
    tr.step(real, rl, fake, fl, k=1)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = tr.step(real, rl, fake, fl, k=1)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / s["steps"] * 1e3, first


def kernels():
    from torch.profiler import ProfilerActivity, profile
    tr = trainer("compiled")
    body = tr._graphed.body
    toks, lens = real[:B].to(dev), rl[:B].to(dev)
    y, is_real = torch.ones(B, device=dev), torch.ones(B, dtype=torch.bool, device=dev)
    for _ in range(3):
        tr.optimizer.zero_grad(set_to_none=True)
        body(toks, lens, y, is_real)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        tr.optimizer.zero_grad(set_to_none=True)
        body(toks, lens, y, is_real)
        torch.cuda.synchronize()
    ev = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    agg = {}
    for e in ev:
        n, t = agg.get(e.name, (0, 0.0))
        agg[e.name] = (n + 1, t + e.device_time_total)
    top = sorted(agg.items(), key=lambda kv: -kv[1][1])[:25]
    out("kernels_total", [len(ev), round(sum(e.device_time_total for e in ev), 1)])
    for name, (n, t) in top:
        print(f"{t:8.1f} us {n:3d}x {name[:150]}", flush=True)


def main():
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out("device", torch.cuda.get_device_name(0))
    kernels()
    for rnd in range(2):
        for kind in ("eager", "compiled", "autotune"):
            try:
                ms, first = timed(kind)
                out(f"r{rnd}/{kind}_ms_per_update", round(ms, 4))
                out(f"r{rnd}/{kind}_first_epoch_s", round(first, 1))
            except Exception as exc:  # noqa: BLE001 - a probe reports and goes on
                out(f"r{rnd}/{kind}_error", repr(exc)[:300])


if __name__ == "__main__":
    try:
        main()
    finally:
        print("PROBE", json.dumps(res), flush=True)
