"""The GPU probe of 2026-11-28 (one H200, torch 2.11 + CUDA 13.0), kept as it ran: per-update time
of SeqGAN's CNN discriminator update (64 sequences of 20 tokens, V = 5000), eager (the trainer
as it then was) against the same update captured as one CUDA graph, with the CNN's pooling of
that time (one convolution, mask and max per width) and with one mask and one max over the 12
widths' padded outputs ("fusedpool"); CUDA kernels per update; seconds to sample 10,000
sequences from the generator. Results: probe_graph.md. Run from the repository root."""
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
import discriminators  # noqa: E402
from agents.generator import Generator  # noqa: E402
from discriminators.trainer import DiscriminatorTrainer  # noqa: E402

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
V, T, B = 5000, 20, 64
res = {}


def out(k, v):
    res[k] = v
    print(k, v, flush=True)


g = torch.Generator().manual_seed(0)
M = 20000
toks = torch.randint(0, V, (M, T), generator=g).to(dev)
lens = torch.full((M,), T, dtype=torch.long, device=dev)
y = (torch.arange(M, device=dev) < M // 2).float()


def sync():
    torch.cuda.synchronize()


def make():
    torch.manual_seed(0)
    d = discriminators.CNNDiscriminator(V, T).to(dev)
    return d


def fused_encode(self, tokens, lengths, valid):
    e = self._embed(tokens)  # (N, E, W)
    N, W = e.shape[0], e.shape[2]
    cs = [conv(e) for conv in self.convs]  # (N, f, W - w + 1)
    c = torch.cat([F.pad(ci, (0, W - ci.shape[2])) for ci in cs], 1)  # (N, F, W)
    j = torch.arange(W, device=e.device)
    ok = (j[None, None, :] + self._wvec[None, :, None] <= lengths[:, None, None]) | (j == 0)[None, None, :]
    m = c.masked_fill(~ok, float("-inf")).amax(2)
    x = F.relu(m)
    return self.highway(x) if self.highway is not None else x


def add_wvec(d):
    d._wvec = torch.cat([torch.full((f,), w, device=dev) for w, f in zip(d.widths, d.filters)])


def step_fn(d, opt, st, sl, sy):
    valid = torch.arange(T, device=dev)[None, :] < sl[:, None]
    logits = d.head(d.encode(st, sl, valid))
    loss = F.binary_cross_entropy_with_logits(logits, sy) + d.regularization()
    loss.backward()
    opt.step()
    return loss


def time_eager(d, n=100):
    tr = DiscriminatorTrainer(d, lr=1e-4, seed=0)
    tr.step(toks[:640], lens[:640], toks[640:1280], lens[640:1280], k=1)
    sync()
    t = time.perf_counter()
    tr.step(toks[: n * B // 2], lens[: n * B // 2], toks[M - n * B // 2:], lens[M - n * B // 2:], k=1)
    sync()
    return (time.perf_counter() - t) / n * 1e3


def time_graph(d, per_graph=1, n=600, fused_adam=True):
    opt = torch.optim.Adam(d.parameters(), lr=1e-4, capturable=True, fused=fused_adam)
    d.train()
    K = per_graph
    sidx = torch.zeros(K, B, dtype=torch.long, device=dev)
    st = torch.zeros(B, T, dtype=torch.long, device=dev)
    sl = torch.full((B,), T, dtype=torch.long, device=dev)
    sy = torch.zeros(B, device=dev)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            step_fn(d, opt, toks[:B], lens[:B], y[:B])
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        for k in range(K):
            torch.index_select(toks, 0, sidx[k], out=st)
            torch.index_select(lens, 0, sidx[k], out=sl)
            torch.index_select(y, 0, sidx[k], out=sy)
            if k > 0:
                opt.zero_grad(set_to_none=False)
            step_fn(d, opt, st, sl, sy)
    perm = torch.randint(0, M, ((n // K + 5), K, B), device=dev)
    for i in range(5):
        sidx.copy_(perm[i])
        graph.replay()
    sync()
    t = time.perf_counter()
    for i in range(5, 5 + n // K):
        sidx.copy_(perm[i])
        graph.replay()
    sync()
    return (time.perf_counter() - t) / (n // K * K) * 1e3


def kernels_per_update(d, fused_adam=True):
    from torch.profiler import ProfilerActivity, profile
    opt = torch.optim.Adam(d.parameters(), lr=1e-4, fused=fused_adam)
    d.train()
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        step_fn(d, opt, toks[:B], lens[:B], y[:B])
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            step_fn(d, opt, toks[:B], lens[:B], y[:B])
        sync()
    n = sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")
    us = sum(e.self_device_time_total for e in prof.key_averages()) / 5
    return n / 5, us


def main():
    out("device", torch.cuda.get_device_name(0))
    out("torch", torch.__version__)
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = True
        tag = "tf32" if tf32 else "ieee_mm"
        d = make()
        out(f"{tag}/eager_trainer_ms", round(time_eager(d), 3))
        d = make()
        out(f"{tag}/graph1_ms", round(time_graph(d, 1), 3))
        d = make()
        out(f"{tag}/graph8_ms", round(time_graph(d, 8), 3))
        d = make()
        out(f"{tag}/kernels_current", kernels_per_update(d))
        type(d).encode_orig = type(d).encode
        type(d).encode = fused_encode
        try:
            d = make()
            add_wvec(d)
            out(f"{tag}/fusedpool_graph1_ms", round(time_graph(d, 1), 3))
            d = make()
            add_wvec(d)
            out(f"{tag}/fusedpool_graph8_ms", round(time_graph(d, 8), 3))
            d = make()
            add_wvec(d)
            out(f"{tag}/kernels_fusedpool", kernels_per_update(d))
        finally:
            type(d).encode = type(d).encode_orig
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    d = make()
    out("cudnn_bench/graph1_ms", round(time_graph(d, 1), 3))
    torch.backends.cudnn.benchmark = False
    gen = Generator(V, T, seed=0).to(dev)
    gen.sample(10000)
    sync()
    t = time.perf_counter()
    for _ in range(3):
        gen.sample(10000)
    sync()
    out("sample10k_s", round((time.perf_counter() - t) / 3, 4))
    print(json.dumps(res))


if __name__ == "__main__":
    try:
        main()
    finally:
        print("PROBE", json.dumps(res), flush=True)
