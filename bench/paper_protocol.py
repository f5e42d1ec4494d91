"""SeqGAN's paper protocol, timed through ``train.py``'s driver: measured, or projected from its phases.

The protocol (``train.py --agent seqgan --budget paper``): 120 MLE epochs on the oracle's
10,000 sequences, 50 discriminator pretraining rounds (10,000 fresh negatives + 10,000 real
sequences, 3 epochs each), 200 adversarial steps (one generator update with the 16-rollout MC
reward of the CNN, then 5 rounds of fresh negatives × 3 discriminator epochs), evaluation
(NLL-oracle of 5,000 samples, NLL-test) every 5 iterations, a checkpoint after each.

A full run is long (hours on a CPU), so by default the run is the same recipe with fewer iterations of each
phase (``--mle``, ``--d-pretrain``, ``--adv``), everything else as in the paper budget. Each
iteration's training seconds are recorded by phase; the time between two iterations beyond
training is the evaluation (iterations that evaluate) or the checkpoint (the others). The
projection is Σ over phases of n_phase × (median training seconds + median checkpoint seconds
of that phase) + 74 evaluations (every 5th of the 370 iterations) + the start-up with the
initial evaluation + each phase's first iteration's excess over its median (its warm-up:
allocations, cuDNN's algorithm choices, compilation); the medians leave each first out. Phases
cost the same per iteration whatever their number, so the projection is the protocol's time up
to the spread of those medians. ``--full`` runs the whole protocol and reports the measured
time as well.

Precision: torch's defaults (float32 matrix products in IEEE float32, cuDNN's convolutions and
the CNN's window product in TF32 where the GPU has it); ``--tf32`` lets every float32 matrix
product use TF32 (the highway's, the generator's): the run's ``tf32`` option (``train.py --tf32 true``).
``--compile`` compiles the discriminator's captured update (``train.py --d-compile true``), whose
compilation then counts in the start-up and the first iterations of the phases that train it;
``--d-precision bfloat16`` trains the discriminator in bfloat16 mixed precision; ``--mc-graph``
replays the MC reward's chunks as captured CUDA graphs (``train.py --mc-cuda-graph true``).

The scorer is SeqGAN's CNN discriminator (the reward) and the oracle (NLL-oracle). There is no
baseline in another implementation: ``ratio`` = the goal's 600 s / the (projected) seconds,
above 1 when the protocol fits 10 minutes.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any, Dict, List, Tuple

import torch
from common import emit, log, parser

from agents import preset
from agents.config import resolve
from agents.driver import train
from discriminators.trainer import PRECISIONS

GOAL_SECONDS = 600.0


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--mle", type=int, default=4, help="MLE epochs to time (the protocol has 120)")
    p.add_argument("--d-pretrain", type=int, default=3, help="discriminator pretraining rounds to time (50)")
    p.add_argument("--adv", type=int, default=6, help="adversarial steps to time (200)")
    p.add_argument("--full", action="store_true", help="run the whole protocol")
    p.add_argument("--tf32", action="store_true", help="the run's tf32 option: float32 matrix products in TF32 on "
                   "CUDA, as cuDNN's convolutions are by torch's default")
    p.add_argument("--compile", action="store_true", help="the run's d_compile option: the discriminator's captured "
                   "update compiled with torch.compile")
    p.add_argument("--mc-graph", action="store_true", help="the run's mc_cuda_graph option: the MC reward's rollouts "
                   "and scoring replayed as captured CUDA graphs")
    p.add_argument("--d-precision", default="float32", choices=list(PRECISIONS),
                   help="the run's d_precision option: the discriminator's training precision")
    args = p.parse_args()
    device = torch.device(args.device)
    paper = resolve(preset("seqgan"), "paper")
    counts = {"mle": paper.config.mle_epochs, "d_pretrain": paper.config.d_pretrain_steps, "adv": paper.config.adv_steps}
    every = paper.run.eval_every
    if args.full:
        timed = dict(counts)
    elif args.quick:
        timed = {"mle": 1, "d_pretrain": 1, "adv": 1}
    else:
        timed = {"mle": args.mle, "d_pretrain": args.d_pretrain, "adv": args.adv}
        if min(timed.values()) < 1:
            p.error("--mle, --d-pretrain and --adv must be at least 1: each phase is projected from its own iterations")
    explicit: Dict[str, Any] = {"mle_epochs": timed["mle"], "d_pretrain_steps": timed["d_pretrain"],
                                "adv_steps": timed["adv"], "tf32": bool(args.tf32),
                                "d_compile": bool(args.compile), "d_precision": args.d_precision,
                                "mc_cuda_graph": bool(args.mc_graph)}
    if args.quick:  # a seconds-long smoke run of the same code path
        explicit.update(train_size=256, d_samples=256, d_steps=1, d_epochs=1, n_rollouts=2, eval_samples=64,
                        eval_test_size=64)
    resolved = resolve(preset("seqgan"), "paper", explicit=explicit)

    seconds: Dict[str, List[float]] = {k: [] for k in counts}
    checkpoints: Dict[str, List[float]] = {k: [] for k in counts}  # by phase: the discriminator's state adds to it
    evals: List[Tuple[str, float]] = []
    last = [0.0]
    first_rest: List[float] = []  # start-up, the initial evaluation and the first checkpoint

    def on_iteration(agent: Any, stats: Dict[str, Any], dt: float) -> None:
        now = time.perf_counter()
        phase = stats["phase"]
        seconds[phase].append(dt)
        rest = now - last[0] - dt  # evaluation (when this iteration evaluates) and checkpoint
        if not first_rest:
            first_rest.append(rest)
        elif agent.iteration % every == 0 or agent.iteration == agent.total_iterations:
            evals.append((phase, rest))
        else:
            checkpoints[phase].append(rest)
        last[0] = now
        log(f"iteration {agent.iteration} ({phase}): {dt:.2f} s training, {rest:.2f} s evaluation/checkpoint")

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        last[0] = t0
        summary = train(resolved, out, device=device, quiet=True, on_iteration=on_iteration)
        wall = time.perf_counter() - t0
    first = {k: v[0] for k, v in seconds.items()}  # warm-up: allocations, cuDNN's choices, compilation
    med = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in seconds.items()}
    start_up = first_rest[0]
    every_ckpt = [c for v in checkpoints.values() for c in v]
    fallback = statistics.median(every_ckpt) if every_ckpt else 0.0
    ckpt = {k: statistics.median(v) if v else fallback for k, v in checkpoints.items()}
    # at least 0: under --quick a phase's one iteration is its evaluating one, and the checkpoint time
    # taken from the other phases can exceed what the evaluation left
    ev = max(0.0, statistics.median([rest - ckpt[phase] for phase, rest in evals])) if evals else 0.0
    total_iters = sum(counts.values())
    n_evals = total_iters // every + (total_iters % every != 0)
    # the first iteration's checkpoint is inside start_up; each phase's first iteration's extra
    # (its warm-up) is counted once
    projected = (sum(counts[k] * (med[k] + ckpt[k]) for k in counts) - ckpt["mle"] + n_evals * ev + start_up
                 + sum(first[k] - med[k] for k in counts))
    log(f"seconds per iteration: {', '.join(f'{k} {v:.2f}' for k, v in med.items())}; evaluation {ev:.2f}, "
        f"checkpoint {', '.join(f'{k} {v:.2f}' for k, v in ckpt.items())}; "
        f"projected protocol {projected:.0f} s ({projected / 60:.1f} min); this run {wall:.0f} s")
    emit({
        "benchmark": "paper_protocol", "agent": "seqgan", "budget": "paper", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "scorer": "cnn (SeqGAN's, the reward); oracle (NLL-oracle)", "threads": torch.get_num_threads(),
        "quick": bool(args.quick), "tf32_matmul": bool(args.tf32), "d_compile": bool(args.compile),
        "d_precision": args.d_precision, "mc_cuda_graph": bool(args.mc_graph), "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "protocol_iterations": counts, "timed_iterations": timed,
        "seconds_per_iteration": med, "first_iteration_seconds": first, "evaluation_seconds": ev,
        "checkpoint_seconds": ckpt, "start_up_seconds": start_up, "evaluations": n_evals,
        "projected_seconds": projected, "measured_seconds": wall if args.full else None, "run_seconds": wall,
        "goal_seconds": GOAL_SECONDS, "ratio": GOAL_SECONDS / (wall if args.full else projected),
        "final_metrics": summary.get("metrics"),
    })


if __name__ == "__main__":
    main()
