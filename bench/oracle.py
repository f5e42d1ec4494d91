"""The synthetic oracle benchmark: MLE, then each adversarial agent from the same MLE run.

Protocol (the SeqGAN synthetic oracle): the oracle LSTM (vocab 5000, length 20), 10,000 oracle
samples for training, NLL-oracle = the oracle's mean per-token NLL of generator samples (5,000
by default), NLL-test = the generator's mean per-token NLL of the oracle's 5,000 held-out
samples, and the generator's per-token entropy of its own samples. NLL-oracle alone rewards
mode collapse: the three are reported together.

Every run goes through the one training driver (:func:`agents.driver.train`) into a run folder
under ``--runs`` (default ``runs/bench/oracle-s<seed>``), all from one seed:

1. ``mle``: the ``mle`` preset for ``--mle-epochs`` epochs. Its run folder is the MLE row and
   the warm start of every adversarial agent; a finished folder with the same config is reused.
2. each adversarial agent (``seqgan``, ``maligan``, ``maligan-mixed``, ``scratchgan``,
   ``maskgan``): its preset under this benchmark's budget (caps on size fields only, so
   recipes stay as published: ScratchGAN keeps batch 512 and no discriminator pretraining;
   MaliGAN-mixed's clamp period scales with the capped ``adv_steps``), warm started with
   ``init_from`` = the MLE run (generator weights; fresh optimizers).
3. ``mle-continued`` (control): the MLE run continued, through the same warm start, for
   ``--control-epochs`` more epochs (default ``--adv-steps``: an MLE iteration is an epoch).
4. ``ppo`` (Stable-Baselines3 with textgym's generator policy, whose actor is the LSTM
   generator) is warm started from the MLE run like the others. An agent that runs from
   scratch is labelled so and is not counted in ``ratio``.

The last stdout line is one JSON object: {"benchmark": "oracle", "device", "seed", "budget",
"results": {agent: {"nll_oracle", "nll_test", "entropy", "seconds", "start", "config",
"run"}}, "published", "oracle", "best_adversarial", "ratio"}; ``ratio`` = NLL-oracle(MLE) /
best NLL-oracle of the adversarial agents started from it (> 1: one improved on MLE; with no
control for a no-information discriminator this is not evidence of adversarial learning).
``seconds`` is each run's training time without evaluation. A Markdown table goes to stderr
and to ``--table PATH``.

``--threads`` defaults to 1: on a shared machine torch's default of one intra-op thread per
core oversubscribes the cores; ``--threads 0`` keeps torch's default.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from common import emit, log, parser, run_or_reuse

ADVERSARIAL = ["seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan"]
DEFAULT_AGENTS = [*ADVERSARIAL, "ppo"]
PUBLISHED = {"mle": 9.038, "seqgan": 8.736}  # Yu et al. 2017 (SeqGAN), NLL-oracle, length 20, this oracle
# Caps on size fields (agents.config budgets): recipe fields are never touched.
FULL: Dict[str, Optional[int]] = dict(mle_epochs=30, adv_steps=10, d_pretrain_steps=3, d_steps=1, d_epochs=1,
                                      d_samples=1000, n_rollouts=4, eval_samples=5000)
QUICK: Dict[str, Optional[int]] = dict(mle_epochs=1, adv_steps=1, d_pretrain_steps=1, d_steps=1, d_epochs=1,
                                       d_samples=64, n_rollouts=2, eval_samples=256, train_size=512,
                                       eval_test_size=256)
CAPPED = ("mle_epochs", "adv_steps", "d_pretrain_steps", "d_steps", "d_epochs", "d_samples", "n_rollouts", "eval_samples")
NO_INTERMEDIATE_EVAL = 10**9  # evaluate at the start and the end only


def build_parser():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="seeds MLE, every agent and the evaluation samples")
    p.add_argument("--agents", nargs="+", default=None,
                   help=f"agents after MLE (default: {' '.join(DEFAULT_AGENTS)}); 'mle' is always run")
    for key in CAPPED:
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       help=f"cap on {key} (default {FULL[key]}; --quick {QUICK[key]})")
    p.add_argument("--control-epochs", type=int, default=None,
                   help="extra MLE epochs of the mle-continued control (default: --adv-steps; 0: no control)")
    p.add_argument("--batch-size", type=int, default=None, help="override every agent's generator batch (a recipe field)")
    p.add_argument("--mixed-every", type=int, default=None, help="maligan-mixed: N decreases every this many steps")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--runs", default=None, help="folder of the run folders (default runs/bench/oracle-s<seed>[-quick])")
    p.add_argument("--mle-checkpoint", default=None, help="deprecated: the MLE run folder under --runs is reused instead")
    p.add_argument("--table", default=None, help="also write the Markdown table to this file")
    return p


# ---------------------------------------------------------------------------- one run
def run_one(label: str, name: str, budget: Dict[str, Optional[int]], explicit: Dict[str, Any], folder: Path,
            device: torch.device) -> Dict[str, Any]:
    """One run through the driver (a finished run with the same config is reused); its result row."""
    def progress(agent: Any, stats: Dict[str, Any], dt: float) -> None:
        keys = ("g_loss", "nll_train", "reward", "d_loss", "d_acc_real", "d_acc_fake", "clamp_length", "critic_loss",
                "episode_reward")
        text = " ".join(f"{k}={stats[k]:.3f}" for k in keys if isinstance(stats.get(k), float))
        log(f"[{label}] {stats.get('phase', '')} {agent.iteration}/{agent.total_iterations} {text} ({dt:.1f} s)")

    summary = run_or_reuse(name, budget, explicit, folder, device, on_iteration=progress)
    if summary.get("already_finished"):
        log(f"[{label}] reused the finished run in {folder}")
    m = summary["metrics"]
    log(f"[{label}] NLL-oracle {m['nll_oracle']:.3f}  NLL-test {m['nll_test']:.3f}  entropy {m['entropy']:.3f}  "
        f"({summary['train_seconds']:.1f} s)")
    values = summary["config"]
    keep = ("mle_epochs", "adv_steps", "g_steps", "batch_size", "gen_lr", "mle_lr", "reward", "transform",
            "discriminator", "d_pretrain_steps", "d_steps", "d_epochs", "d_samples", "d_lr", "n_rollouts", "gamma",
            "baseline", "mixed_K", "mixed_every", "mixed_m", "num_envs", "learning_rate")
    return {"nll_oracle": m["nll_oracle"], "nll_test": m["nll_test"], "entropy": m["entropy"],
            "seconds": float(summary["train_seconds"]), "iterations": summary["iterations"],
            "start": "mle-run" if values.get("init_from") else "scratch", "run": str(folder),
            "config": {k: values[k] for k in keep if k in values}}


# ---------------------------------------------------------------------------- report
def label(name: str, res: Dict[str, Any], budget: Dict[str, Any]) -> str:
    if name == "mle":
        return f"mle ({budget['mle_epochs']} epochs)"
    if name == "mle-continued":
        return f"mle-continued (control, +{budget['control_epochs']} epochs)"
    if res.get("start") == "scratch":
        return f"{name} (from scratch)"
    return name


def table(results: Dict[str, Dict[str, Any]], budget: Dict[str, Any]) -> str:
    def num(v: Any, digits: int) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"

    rows = ["| agent | NLL-oracle | NLL-test | entropy | seconds |", "|---|---:|---:|---:|---:|"]
    for name, res in results.items():
        if "error" in res:
            rows.append(f"| {label(name, res, budget)} | failed: {res['error'][:60]} | – | – | – |")
        else:
            rows.append(f"| {label(name, res, budget)} | {num(res['nll_oracle'], 3)} | {num(res['nll_test'], 3)} | "
                        f"{num(res['entropy'], 3)} | {num(res['seconds'], 0)} |")
    rows.append(f"| published: MLE (Yu et al. 2017) | {PUBLISHED['mle']:.3f} | – | – | – |")
    rows.append(f"| published: SeqGAN (Yu et al. 2017) | {PUBLISHED['seqgan']:.3f} | – | – | – |")
    return "\n".join(rows) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.mle_checkpoint:
        warnings.warn("--mle-checkpoint is deprecated and ignored: the MLE run folder under --runs is reused", DeprecationWarning,
                      stacklevel=1)
        log("note: --mle-checkpoint is deprecated and ignored; the MLE run folder under --runs is reused")
    device = torch.device(args.device)
    import agents

    names = [n for n in dict.fromkeys(args.agents or DEFAULT_AGENTS) if n != "mle"]
    unknown = [n for n in names if n not in agents.available()]
    if unknown:
        print(f"error: unknown agent(s) {unknown}; valid: {agents.available()}", file=sys.stderr)
        return 2
    budget: Dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in CAPPED:
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    budget["control_epochs"] = budget["adv_steps"] if args.control_epochs is None else args.control_epochs
    caps = {k: v for k, v in budget.items() if k != "control_epochs"}
    runs = Path(args.runs or f"runs/bench/oracle-s{args.seed}{'-quick' if args.quick else ''}")
    common: Dict[str, Any] = {"seed": args.seed, "eval_every": NO_INTERMEDIATE_EVAL}
    started = time.perf_counter()
    log(f"oracle benchmark: device {device}, threads {torch.get_num_threads()}, seed {args.seed}, agents {names}, "
        f"budget {budget}, runs in {runs}")

    results: Dict[str, Dict[str, Any]] = {}
    results["mle"] = run_one("mle", "mle", caps, common, runs / "mle", device)
    warm = {**common, "init_from": str(runs / "mle")}
    for name in names:
        log(f"---- {name}")
        explicit = dict(warm)
        if args.batch_size is not None and name != "ppo":
            explicit["batch_size"] = args.batch_size
        if args.mixed_every is not None and name == "maligan-mixed":
            explicit["mixed_every"] = args.mixed_every
        try:
            results[name] = run_one(name, name, caps, explicit, runs / name, device)
        except Exception as exc:  # report and go on with the others
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "nll_oracle": None, "nll_test": None,
                             "seconds": None}
    if budget["control_epochs"] > 0:
        log("---- mle-continued")
        results["mle-continued"] = run_one("mle-continued", "mle", caps,
                                           {**warm, "mle_epochs": budget["control_epochs"]}, runs / "mle-continued", device)

    from_mle = {n: r for n, r in results.items() if n in names and r.get("start") == "mle-run"
                and isinstance(r.get("nll_oracle"), float)}
    best = min(from_mle, key=lambda n: from_mle[n]["nll_oracle"]) if from_mle else None
    ratio = results["mle"]["nll_oracle"] / from_mle[best]["nll_oracle"] if best else None
    from textgym.data import resolve_data

    oracle = str(resolve_data("oracle").oracle.source)
    oracle = oracle if oracle and not oracle.startswith("fresh") else "fresh"
    md = table(results, budget)
    header = (f"Synthetic oracle benchmark (oracle: {oracle}; device {device}; seed {args.seed}; NLL-oracle on "
              f"{budget['eval_samples']} samples). Budget (caps on size fields): {caps}; the control continues MLE for "
              f"{budget['control_epochs']} epochs. Seconds: training only (no evaluation).\n\n")
    log("\n" + header + md)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(header + md)
    log(f"total wall time {time.perf_counter() - started:.0f} s; best adversarial: {best}; ratio {ratio}")
    emit({
        "benchmark": "oracle", "device": str(device), "threads": torch.get_num_threads(), "seed": args.seed,
        "quick": bool(args.quick), "budget": budget, "results": results, "published": PUBLISHED, "oracle": oracle,
        "best_adversarial": best, "ratio": ratio, "total_seconds": time.perf_counter() - started,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
