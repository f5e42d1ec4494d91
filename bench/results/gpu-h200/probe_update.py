"""The second GPU probe (one H200), kept as it ran: milliseconds per captured
update of SeqGAN's CNN discriminator (64 sequences of 20 tokens, V = 5000, a capturable fused
Adam, the update captured once as a CUDA graph and replayed per minibatch), for:

- ``conv``: the CNN's one-convolution pooling (``_pool_all``: cuDNN, every width's filters
  zero-padded to 20);
- ``im2col``: the same windows as one matrix product: the padded embeddings unfolded into
  (N·width, 20·E) windows times the (20·E, F) filters, so that the backward to the embeddings
  is a matrix product too instead of cuDNN's data-gradient kernel (0.26 of the update's
  1.1 ms in ``profile_step.py``'s table);

each with IEEE float32 or TF32 matrix products (cuDNN's convolutions may use TF32 in both, as
torch's default allows), and each under bfloat16 autocast. Also: the largest logit difference
of each pooling against the convolution in IEEE float32. Run from the repository root.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
import discriminators  # noqa: E402
from discriminators.cnn import _masked_max  # noqa: E402

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
V, T, B = 5000, 20, 64
res = {}


def out(k, v):
    res[k] = v
    print(k, v, flush=True)


g = torch.Generator().manual_seed(0)
M = 20000
toks = torch.randint(0, V, (M, T), generator=g).to(dev)
lens = torch.randint(5, T + 1, (M,), generator=g).to(dev)
y = (torch.arange(M, device=dev) < M // 2).float()


def pool_im2col(self, e, lengths):
    """``_pool_all`` with the convolution as unfold + one matrix product: e (N, E, width) -> (N, F)."""
    W = max(self.widths)
    weight = torch.cat([F.pad(c.weight, (0, W - w)) for w, c in zip(self.widths, self.convs)])  # (F, E, W)
    bias = torch.cat([c.bias for c in self.convs])
    N, E, width = e.shape
    win = F.pad(e, (0, W - 1)).unfold(2, W, 1)  # (N, E, width, W)
    win = win.permute(0, 2, 1, 3).reshape(N * width, E * W)
    c = F.linear(win, weight.reshape(weight.shape[0], E * W), bias).view(N, width, -1).transpose(1, 2)
    j = torch.arange(width, device=e.device)
    ok = (j[None, None, :] + self.filter_widths[None, :, None] <= lengths[:, None, None]) | (j == 0)[None, None, :]
    return F.relu(_masked_max(c, ok))


def make(pool):
    torch.manual_seed(0)
    d = discriminators.CNNDiscriminator(V, T).to(dev)
    d.one_conv = True
    if pool == "im2col":
        d._pool_all = pool_im2col.__get__(d)
    return d


def step_fn(d, opt, st, sl, sy, bf16):
    valid = torch.arange(T, device=dev)[None, :] < sl[:, None]
    with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
        logits = d.head(d.encode(st, sl, valid))
    loss = F.binary_cross_entropy_with_logits(logits.float(), sy) + d.regularization()
    loss.backward()
    opt.step()
    return loss


def time_graph(d, bf16, n=600):
    opt = torch.optim.Adam(d.parameters(), lr=1e-4, capturable=True, fused=True)
    d.train()
    sidx = torch.zeros(B, dtype=torch.long, device=dev)
    st = torch.zeros(B, T, dtype=torch.long, device=dev)
    sl = torch.full((B,), T, dtype=torch.long, device=dev)
    sy = torch.zeros(B, device=dev)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            step_fn(d, opt, toks[:B], lens[:B], y[:B], bf16)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        torch.index_select(toks, 0, sidx, out=st)
        torch.index_select(lens, 0, sidx, out=sl)
        torch.index_select(y, 0, sidx, out=sy)
        step_fn(d, opt, st, sl, sy, bf16)
    perm = torch.randint(0, M, (n + 5, B), device=dev)
    for i in range(5):
        sidx.copy_(perm[i])
        graph.replay()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(5, 5 + n):
        sidx.copy_(perm[i])
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e3


def main():
    out("device", torch.cuda.get_device_name(0))
    out("torch", torch.__version__)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x, xl = toks[:512], lens[:512]
    ref = make("conv").eval()(x, xl)
    out("ieee/im2col_max_logit_diff", float((make("im2col").eval()(x, xl) - ref).abs().max()))
    with torch.autocast("cuda", torch.bfloat16):
        for pool in ("conv", "im2col"):
            out(f"bf16/{pool}_max_logit_diff", float((make(pool).eval()(x, xl).float() - ref).abs().max()))
    for rnd in range(2):  # two interleaved rounds
        for mm in ("ieee", "tf32"):
            torch.backends.cuda.matmul.allow_tf32 = mm == "tf32"
            torch.backends.cudnn.allow_tf32 = True  # torch's default
            for pool in ("conv", "im2col"):
                out(f"r{rnd}/{mm}/{pool}_ms", round(time_graph(make(pool), False), 4))
        torch.backends.cuda.matmul.allow_tf32 = False
        for pool in ("conv", "im2col"):
            out(f"r{rnd}/bf16/{pool}_ms", round(time_graph(make(pool), True), 4))


if __name__ == "__main__":
    try:
        main()
    finally:
        print("PROBE", json.dumps(res), flush=True)
