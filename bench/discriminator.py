"""Discriminator training throughput: SeqGAN's CNN and the ``rnn`` discriminator vs a plain baseline.

Setting (headline): V = 5000, length 20, minibatches of 64 sequences (real and fake mixed),
Adam, binary cross-entropy: sequences per second of ``DiscriminatorTrainer.step`` updates.

- ``cnn``: the full-size SeqGAN CNN (``discriminators.make("cnn", vocab_size=5000)``: embedding
  64, 12 window widths, 1720 filters, highway, dropout 0.25);
- ``rnn``: the ``rnn`` discriminator at its defaults (LSTM 128, embedding 64, LayerNorm),
  trained on every prefix's logit (its default); ``rnn_last`` the same trained on the whole
  sequence's logit only, and ``rnn_per_prefix_cost`` = rnn_last / rnn throughput;
- ``baseline``: plain PyTorch in this process, trained the same way (same minibatches, Adam,
  ``BCEWithLogitsLoss``) by a hand-written loop: ``nn.Embedding(V + 1, 64)``, mean over the
  valid positions, ``nn.Linear(64, 1)``. It is the cheapest reasonable discriminator, so
  ``ratio`` (cnn over baseline throughput) says what the CNN's size costs against it.

These four are timed in interleaved rounds (medians of ``--repeats``; the runs recorded in
``bench/results/discriminator.json`` before 2026-11-29 timed them one after the other).

``cnn_before`` is the CNN as it was implemented before this benchmark's speed work, in the
same process and interleaved with ``cnn`` (:class:`CNNBefore`: ReLU over every window, then the
length mask, then the max; Adam without the fused kernel; on a GPU also one convolution per
width and eager updates, where ``cnn`` pools every width with one convolution and replays each
update as a CUDA graph; ``cnn_eager_one_conv`` and ``cnn_graph_per_width`` have one of the two).
``cnn_bf16`` is ``cnn`` trained in bfloat16 mixed precision (``DiscriminatorTrainer(precision=
"bfloat16")``; ``ratio_bf16`` against float32, ``ratio_bf16_vs_before`` against the previous
implementation). ``ratio_vs_before`` = cnn / cnn_before throughput, for the variable-length
minibatches of the headline and (``_full``) for full-length ones such as the oracle's (where the
mask is skipped). ``same_updates`` trains all three from the same weights on the same 40
minibatches with the same dropout draws and reports the largest differences of their held-out
logits, their held-out accuracies and AUCs.

``ratio`` = CNN throughput / baseline throughput is a cost ratio (higher is faster; below 1
means the CNN costs that fraction of the baseline's speed). ``seqgan_schedule_seconds`` is the
implied time of the original SeqGAN discriminator schedule per adversarial step (5 rounds × 3
epochs over 10,000 real + 10,000 fake sequences = 300,000 sequences) with the CNN on this
device; ``cnn_gflops`` is the CNN's achieved rate of conv and highway matrix arithmetic
(forward + backward ≈ 3 × forward).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import discriminators
from common import emit, interleaved, log, parser
from textgym.stats import paired_interval

V, L, BATCH = 5000, 20, 64
SEQGAN_SCHEDULE = 5 * 3 * 20_000  # sequences per adversarial step in the original code


class MeanPoolBaseline(nn.Module):
    """Embedding, mean over the valid positions, one linear logit: (N, T), (N,) -> (N,)."""

    def __init__(self, vocab_size: int, emb_dim: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size + 1, emb_dim, padding_idx=vocab_size)
        self.out = nn.Linear(emb_dim, 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]).float()
        e = (self.embedding(tokens) * mask[..., None]).sum(1) / lengths[:, None].float()
        return self.out(e).squeeze(-1)


def baseline_epoch(model: nn.Module, opt: torch.optim.Optimizer, tokens: torch.Tensor, lengths: torch.Tensor,
                   targets: torch.Tensor, g: torch.Generator) -> None:
    """One pass of plain minibatch BCE training (what ``DiscriminatorTrainer.step(k=1)`` does)."""
    model.train()
    perm = torch.randperm(tokens.shape[0], generator=g).to(tokens.device)
    for start in range(0, tokens.shape[0], BATCH):
        idx = perm[start : start + BATCH]
        loss = F.binary_cross_entropy_with_logits(model(tokens[idx], lengths[idx]), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


class CNNBefore(discriminators.CNNDiscriminator):
    """The CNN's max-over-time pooling as it was: ReLU of every window, mask, max (no lookup tables)."""

    def _tables(self, ids):  # type: ignore[no-untyped-def]
        return [None] * len(self.convs)

    def _pool(self, e, lengths, conv, w, table=None):  # type: ignore[no-untyped-def]
        c = F.relu(conv(e))
        j = torch.arange(c.shape[2], device=e.device)
        ok = (j[None, :] + w <= lengths[:, None]) | (j[None, :] == 0)
        fill = c.masked_fill if torch.is_grad_enabled() else c.masked_fill_
        return fill(~ok[:, None, :], float("-inf")).amax(dim=2)


def before_and_after(device: torch.device, seed: int = 0):
    """(cnn, its trainer, the previous implementation, its trainer), from the same weights."""
    cnn = discriminators.make("cnn", vocab_size=V, max_length=L)
    before = CNNBefore(V, L)
    before.load_state_dict(cnn.state_dict())
    before.one_conv = False  # per-width convolutions, eager updates: as it was on every device
    new = discriminators.DiscriminatorTrainer(cnn, lr=1e-4, batch_size=BATCH, device=device, seed=seed)
    old = discriminators.DiscriminatorTrainer(before, lr=1e-4, batch_size=BATCH, device=device, seed=seed,
                                              cuda_graph=False)
    old.optimizer = torch.optim.Adam(before.parameters(), lr=1e-4)  # the previous optimizer: not fused
    return cnn, new, before, old


def same_updates(device: torch.device, real, real_len, fake, fake_len, held, held_len, held_y):
    """Both implementations, and this one in bfloat16 mixed precision, after the same updates
    (same minibatches and dropout draws): the largest difference of the held-out logits from
    the previous implementation's (``max_logit_difference``) and of bfloat16's from float32's
    (``bf16_max_logit_difference``), and each one's held-out accuracy and AUC."""
    cnn, new, before, old = before_and_after(device, seed=1)
    half = discriminators.make("cnn", vocab_size=V, max_length=L)
    half.load_state_dict(cnn.state_dict())
    bf16 = discriminators.DiscriminatorTrainer(half, lr=1e-4, batch_size=BATCH, device=device, seed=1,
                                               precision="bfloat16")
    out = {}
    for name, d, trainer in (("after", cnn, new), ("before", before, old), ("bfloat16", half, bf16)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            trainer.step(real, real_len, fake, fake_len, k=1)
        out[name] = d.score(held, held_len)
    acc = {k: float(((v > 0).float() == held_y).float().mean()) for k, v in out.items()}
    # the share of (real, fake) pairs ranked right: unlike the accuracy, it does not need the
    # logits to have crossed 0 after a few updates at SeqGAN's lr
    auc = {k: float((v[held_y == 1][:, None] > v[held_y == 0][None, :]).float().mean()) for k, v in out.items()}
    return {"max_logit_difference": float((out["after"] - out["before"]).abs().max()),
            "bf16_max_logit_difference": float((out["after"] - out["bfloat16"]).abs().max()),
            "heldout_acc": acc, "heldout_auc": auc}


def precision_accuracy(device: torch.device, seeds=(0, 1, 2), updates: int = 400) -> dict:
    """Held-out balanced accuracy of SeqGAN's CNN trained in float32 and in bfloat16 mixed
    precision from the same weights on the same minibatches (SeqGAN's lr 1e-4): real sequences
    from the synthetic oracle, fakes from the oracle at temperature 1.5 (a task neither side
    masters in ``updates`` updates), 1,600 + 1,600 held out; per seed, and the mean difference
    with its 95% paired t-interval over the seeds."""
    from textgym.oracle import OracleLSTM

    oracle = OracleLSTM().to(device)
    g = torch.Generator(device=device).manual_seed(0)
    n = updates * BATCH // 4  # each side; two passes make ``updates`` updates
    real = oracle.sample(n + 1600, generator=g)
    fake = oracle.sample(n + 1600, temperature=1.5, generator=g)
    acc: dict = {}
    for seed in seeds:
        for precision in ("float32", "bfloat16"):
            torch.manual_seed(seed)
            d = discriminators.make("cnn", vocab_size=V, max_length=L)
            trainer = discriminators.DiscriminatorTrainer(d, lr=1e-4, batch_size=BATCH, device=device, seed=seed,
                                                          precision=precision)
            trainer.step(real[:n], None, fake[:n], None, k=2)
            acc.setdefault(precision, []).append(trainer.evaluate(real[n:], None, fake[n:], None)["balanced_acc"])
    diff = [b - a for a, b in zip(acc["float32"], acc["bfloat16"], strict=True)]
    interval = paired_interval(acc["bfloat16"], acc["float32"])  # None with one seed
    log(f"held-out balanced accuracy after {updates} updates: float32 {acc['float32']}, bfloat16 {acc['bfloat16']}; "
        f"bfloat16 - float32 over the seeds: {interval}")
    return {"updates": updates, "seeds": list(seeds), "heldout_balanced_acc": acc, "bf16_minus_float32": diff,
            "largest_abs_difference": max(abs(x) for x in diff),
            "mean_difference": None if interval is None else interval.as_dict()}


def cnn_forward_flops(d: discriminators.CNNDiscriminator, T: int) -> float:
    """Multiply-adds × 2 of one sequence's conv and highway layers."""
    flops = sum(2.0 * (max(T, max(d.widths)) - w + 1) * w * d.emb_dim * f for w, f in zip(d.widths, d.filters))
    return flops + 2 * 2.0 * d.feature_dim**2 + 2.0 * d.feature_dim


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="let cuDNN time its convolution algorithms for each shape (torch.backends.cudnn.benchmark)")
    p.add_argument("--precision-accuracy", action="store_true",
                   help="only compare the held-out accuracy of float32 and bfloat16 training (--seeds seeds, 400 "
                        "updates each; minutes on a CPU)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of --precision-accuracy (0, 1, ...)")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.precision_accuracy:
        emit({"benchmark": "discriminator_precision_accuracy", "device": str(device), "quick": bool(args.quick),
              **precision_accuracy(device, seeds=tuple(range(args.seeds)), updates=8 if args.quick else 400)})
        return
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    steps = 3 if args.quick else 40  # minibatch updates per timed call
    repeats = 1 if args.quick else args.repeats
    n = steps * BATCH // 2  # real and as many fake sequences per timed call
    g = torch.Generator().manual_seed(0)
    real = torch.randint(V, (n, L), generator=g).to(device)
    fake = torch.randint(V, (n, L), generator=g).to(device)
    real_len = torch.randint(L // 2, L + 1, (n,), generator=g).to(device)
    fake_len = torch.randint(L // 2, L + 1, (n,), generator=g).to(device)
    torch.manual_seed(0)
    log(f"device {device}, V={V}, length {L}, batch {BATCH}, {steps} updates per timed call, {torch.get_num_threads()} threads")

    models = {"cnn": discriminators.make("cnn", vocab_size=V, max_length=L),
              "rnn": discriminators.make("rnn", vocab_size=V, max_length=L),
              "rnn_last": discriminators.make("rnn", vocab_size=V, max_length=L)}
    trainers = {name: discriminators.DiscriminatorTrainer(d, lr=1e-4, batch_size=BATCH, device=device, seed=0,
                                                          positions="last" if name == "rnn_last" else None)
                for name, d in models.items()}  # rnn: every prefix's logit (its default)
    base = MeanPoolBaseline(V).to(device)
    opt = torch.optim.Adam(base.parameters(), lr=1e-4)
    tokens = torch.cat([real.masked_fill(torch.arange(L, device=device) >= real_len[:, None], V),
                        fake.masked_fill(torch.arange(L, device=device) >= fake_len[:, None], V)])
    lengths = torch.cat([real_len, fake_len])
    targets = torch.cat([torch.ones(n, device=device), torch.zeros(n, device=device)])
    fns = {name: (lambda tr=tr: tr.step(real, real_len, fake, fake_len, k=1)) for name, tr in trainers.items()}
    fns["baseline"] = lambda: baseline_epoch(base, opt, tokens, lengths, targets, g)
    seconds = interleaved(fns, device, repeats)  # every ratio of this first group in interleaved rounds
    throughput = {name: 2 * n / t for name, t in seconds.items()}
    for name, t in seconds.items():
        log(f"{name}: {t:.3f} s per {steps} updates, {throughput[name]:.0f} sequences/s")

    full = torch.full_like(real_len, L)
    _, new, _, old = before_and_after(device)
    _, new_full, _, old_full = before_and_after(device)
    runs = {
        "cnn": lambda: new.step(real, real_len, fake, fake_len, k=1),
        "cnn_before": lambda: old.step(real, real_len, fake, fake_len, k=1),
        "cnn_full": lambda: new_full.step(real, full, fake, full, k=1),
        "cnn_before_full": lambda: old_full.step(real, full, fake, full, k=1),
    }
    half = discriminators.DiscriminatorTrainer(discriminators.make("cnn", vocab_size=V, max_length=L), lr=1e-4,
                                               batch_size=BATCH, device=device, seed=0, precision="bfloat16")
    runs["cnn_bf16"] = lambda: half.step(real, real_len, fake, fake_len, k=1)
    if device.type == "cuda":  # what each of the GPU's two changes gives alone
        eager = discriminators.DiscriminatorTrainer(discriminators.make("cnn", vocab_size=V, max_length=L), lr=1e-4,
                                                    batch_size=BATCH, device=device, seed=0, cuda_graph=False)
        per_width = discriminators.make("cnn", vocab_size=V, max_length=L)
        per_width.one_conv = False
        graphed = discriminators.DiscriminatorTrainer(per_width, lr=1e-4, batch_size=BATCH, device=device, seed=0)
        runs["cnn_eager_one_conv"] = lambda: eager.step(real, real_len, fake, fake_len, k=1)
        runs["cnn_graph_per_width"] = lambda: graphed.step(real, real_len, fake, fake_len, k=1)
    faults: dict = {}
    t = interleaved(runs, device, repeats, faults=faults)
    pair = {k: 2 * n / v for k, v in t.items()}
    log("CNN, this implementation vs the previous one (interleaved): " + ", ".join(
        f"{k} {v:.0f} sequences/s" for k, v in pair.items()))
    # a task with a signal (real ids from the lower half of the vocabulary, fake from the upper),
    # so that the held-out accuracy after the same updates says something
    easy = torch.randint(V // 2, (2 * n, L), generator=g).to(device)
    hard = torch.randint(V // 2, V, (2 * n, L), generator=g).to(device)
    lens = torch.randint(L // 2, L + 1, (2 * n,), generator=g).to(device)
    held = torch.cat([easy[n:], hard[n:]])
    held_y = torch.cat([torch.ones(n), torch.zeros(n)]).to(device)
    same = same_updates(device, easy[:n], lens[:n], hard[:n], lens[:n], held, torch.cat([lens[n:], lens[n:]]), held_y)
    log(f"after the same updates: held-out logits differ by at most {same['max_logit_difference']:.2e}, "
        f"held-out accuracy {same['heldout_acc']}, AUC {same['heldout_auc']}")


    cnn = models["cnn"]
    gflops = 3 * cnn_forward_flops(cnn, L) * throughput["cnn"] / 1e9
    schedule = {k: SEQGAN_SCHEDULE / v for k, v in throughput.items()}
    log(f"SeqGAN schedule (15 x 20,000 sequences) per adversarial step: cnn {schedule['cnn']:.1f} s, "
        f"rnn {schedule['rnn']:.1f} s; CNN at {gflops:.1f} GFLOP/s")
    emit({
        "benchmark": "discriminator",
        "device": str(device),
        "setting": {"cudnn_benchmark": args.cudnn_benchmark, "vocab": V, "length": L, "batch": BATCH, "updates_per_call": steps,
                    "threads": torch.get_num_threads()},
        "quick": bool(args.quick),
        "sequences_per_second": {k: round(v, 1) for k, v in throughput.items()},
        "ratio": throughput["cnn"] / throughput["baseline"],
        "cnn_vs_before": {k: round(v, 1) for k, v in pair.items()},
        "ratio_vs_before": pair["cnn"] / pair["cnn_before"],
        "ratio_bf16": pair["cnn_bf16"] / pair["cnn"],
        "ratio_bf16_vs_before": pair["cnn_bf16"] / pair["cnn_before"],
        "ms_per_update": {k: round(1e3 * BATCH / v, 3) for k, v in pair.items()},
        "minor_faults_per_update": {k: round(v / steps) for k, v in faults.items()},
        "ratio_vs_before_full": pair["cnn_full"] / pair["cnn_before_full"],
        "same_updates": same,
        "ratio_rnn": throughput["rnn"] / throughput["baseline"],
        "rnn_per_prefix_cost": throughput["rnn_last"] / throughput["rnn"],
        "seqgan_schedule_seconds": round(schedule["cnn"], 2),
        "seqgan_schedule_seconds_rnn": round(schedule["rnn"], 2),
        "cnn_gflops": round(gflops, 2),
        "cnn_params": sum(p.numel() for p in cnn.parameters()),
        "cnn_forward_mflops_per_sequence": round(cnn_forward_flops(cnn, L) / 1e6, 2),
    })


if __name__ == "__main__":
    main()
