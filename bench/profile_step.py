"""Where the time of SeqGAN's two hot steps goes: torch.profiler over CNN discriminator updates
and one MC reward with the CNN (a diagnostic for choosing the next optimization, not a race).

- ``d_update``: ``DiscriminatorTrainer.step`` over 40 minibatches of 64 sequences (length 20,
  V = 5000), SeqGAN's CNN;
- ``mc_reward``: ``MCReward.sequence_rewards`` for 64 sequences × 16 rollouts with the
  ``agents`` generator as rollout policy and the CNN as scorer (``--quick``: 8 × 4, length 10).

With ``--phases``, instead: SeqGAN's paper-budget agent (``--tf32``, ``--compile`` as the run
options) timed by the parts of its iterations, each synchronized and with its host syncs: an MLE
epoch, a discriminator round (``fake_batch`` of 10,000 samples, ``real_batch``, the trainer's
3 epochs), one generator step (the MC reward and the policy-gradient update), the held-out
statistics, and a checkpoint's ``state_dict`` written to memory. An adversarial step is one
generator step, 5 rounds, the held-out statistics and a checkpoint: the parts show where the
time beside the discriminator's updates goes.

For each: wall seconds per call (median of ``--repeats`` after a warm-up), the top operators by
self time on the device (CUDA kernel time on a GPU, CPU time otherwise) and, on CUDA, the
number of host synchronizations per call (``torch.cuda.set_sync_debug_mode``: every
operation that makes the host wait for the device) with the source lines that made them. The tables go to stderr; the last stdout
line is one JSON object with the same figures. There is no baseline: ``ratio`` is null.
"""
from __future__ import annotations

import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch
from common import emit, log, parser, timeit
from torch.profiler import ProfilerActivity, profile

import discriminators
from agents.generator import Generator
from textgym.rewards import MCReward


def count_syncs(fn: Callable[[], Any], device: torch.device) -> Tuple[int, Dict[str, int]]:
    """Host synchronizations during one ``fn()`` and the source lines that made them,
    ``"path:line" -> count`` (CUDA only; -1 and {} elsewhere)."""
    if device.type != "cuda":
        return -1, {}
    root = str(Path(__file__).resolve().parents[1]) + "/"
    sites: Counter = Counter()

    def record(message: Any, category: Any, filename: str, lineno: int, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" not in str(message):
            return
        # the innermost frame of this repository's code (not torch's, not this script's)
        ours = [f for f in traceback.extract_stack()[:-1]
                if f.filename.startswith(root) and "/.venv/" not in f.filename and not f.filename.endswith("profile_step.py")]
        sites[f"{ours[-1].filename.replace(root, '')}:{ours[-1].lineno}" if ours else f"{filename}:{lineno}"] += 1

    torch.cuda.synchronize(device)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum(sites.values()), dict(sites.most_common(12))


def top_ops(fn: Callable[[], Any], device: torch.device, k: int) -> Dict[str, Any]:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    avg = prof.key_averages()
    log(avg.table(sort_by=key, row_limit=k))
    rows = sorted(avg, key=lambda e: getattr(e, key), reverse=True)[:k]
    return {e.key: {"ms": round(getattr(e, key) / 1e3, 3), "calls": e.count} for e in rows}


def phases(args: Any, device: torch.device) -> Dict[str, Any]:
    """``phases``: seconds and host syncs of the parts of SeqGAN's paper-budget iterations (see the
    module docstring); ``train_sequences``: the MLE epoch's data."""
    import io

    import agents
    from agents import preset
    from agents.config import resolve

    explicit: Dict[str, Any] = {"d_compile": bool(args.compile)}
    if args.quick:
        explicit.update(train_size=256, d_samples=256, d_epochs=1, n_rollouts=2, d_heldout=64)
    resolved = resolve(preset("seqgan"), "paper", explicit=explicit)
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32) or before
    try:
        from agents.driver import load_data

        agent: Any = agents.make("seqgan", load_data(resolved.run), resolved.config, device=device, seed=0)  # train_size
        n = agent.config.d_samples
        fake, fake_len = agent.fake_batch(n)
        real, real_len = agent.real_batch(n)
        work = {
            "mle_epoch": agent.mle_epoch,
            "fake_batch": lambda: agent.fake_batch(n),
            "real_batch": lambda: agent.real_batch(n),
            "d_trainer_step": lambda: agent.d_trainer.step(real, real_len, fake, fake_len, k=agent.config.d_epochs),
            "discriminator_round": agent.discriminator_round,
            "generator_step": agent.generator_step,
            "heldout_stats": agent.heldout_stats,
            "checkpoint_to_memory": lambda: torch.save(agent.state_dict(), io.BytesIO()),
        }
        out: Dict[str, Any] = {}
        repeats = 1 if args.quick else args.repeats
        for name, fn in work.items():
            seconds = timeit(fn, device, repeats)
            syncs, sites = count_syncs(fn, device)
            log(f"== {name}: {seconds:.4f} s per call, {syncs} host syncs per call {sites or ''}")
            out[name] = {"seconds": seconds, "host_syncs": syncs, "sync_sites": sites}
        return {"phases": out, "train_sequences": len(agent.data.train)}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=15, help="operators listed per step")
    p.add_argument("--phases", action="store_true", help="time the parts of SeqGAN's paper-budget iterations instead")
    p.add_argument("--tf32", action="store_true", help="with --phases: TF32 matrix products (the run's tf32 option)")
    p.add_argument("--compile", action="store_true", help="with --phases: the run's d_compile option (CUDA)")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.compile and device.type != "cuda":
        p.error("--compile compiles the captured CUDA update: it needs --device cuda")
    if args.phases:
        emit({"benchmark": "profile_step", "mode": "phases", "device": str(device), "tf32": bool(args.tf32),
              "d_compile": bool(args.compile), "scorer": "cnn (SeqGAN's, 1720 filters); oracle data",
              "threads": torch.get_num_threads(), "quick": bool(args.quick), "ratio": None,
              "ratio_note": "a profile of one step's phases, no baseline", **phases(args, device)})
        return
    V = 5000
    N, T, n = (8, 10, 4) if args.quick else (64, 20, 16)
    steps = 3 if args.quick else 40
    g = torch.Generator().manual_seed(0)
    real = torch.randint(V, (steps * 32, T), generator=g).to(device)
    fake = torch.randint(V, (steps * 32, T), generator=g).to(device)
    lengths = torch.full((steps * 32,), T, device=device)
    torch.manual_seed(0)
    d = discriminators.make("cnn", vocab_size=V, max_length=T)
    trainer = discriminators.DiscriminatorTrainer(d, lr=1e-4, batch_size=64, device=device, seed=0)
    gen = Generator(V, T, seed=0).to(device)
    tokens = gen.sample(N, generator=torch.Generator(device=device).manual_seed(0))
    reward = MCReward(d, "prob", rollout_policy=gen, n_rollouts=n).bind(V, None, V)
    rng = torch.Generator(device=device).manual_seed(1)
    full = torch.full((N,), T, device=device)
    work = {
        "d_update": lambda: trainer.step(real, lengths, fake, lengths, k=1),
        "mc_reward": lambda: reward.sequence_rewards(tokens, full, rng),
    }
    repeats = 1 if args.quick else args.repeats
    out: Dict[str, Any] = {}
    for name, fn in work.items():
        seconds = timeit(fn, device, repeats)
        syncs, sites = count_syncs(fn, device)
        log(f"== {name}: {seconds:.4f} s per call, {syncs} host syncs per call {sites or ''}")
        out[name] = {"seconds": seconds, "host_syncs": syncs, "sync_sites": sites, "top": top_ops(fn, device, args.top)}
    out["d_update"]["ms_per_update"] = 1e3 * out["d_update"]["seconds"] / steps
    emit({"benchmark": "profile_step", "device": str(device), "scorer": "cnn (SeqGAN's, 1720 filters)",
          "threads": torch.get_num_threads(), "quick": bool(args.quick),
          "setting": {"updates_per_call": steps, "sequences": N, "length": T, "rollouts": n, "vocab": V},
          "ratio": None, "ratio_note": "a profile of one step's parts, no baseline", **out})


if __name__ == "__main__":
    main()
