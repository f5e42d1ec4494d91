"""The synthetic oracle benchmark: MLE, then each adversarial agent from the same MLE checkpoint.

Protocol (DESIGN.md, "The synthetic oracle benchmark"): the SeqGAN oracle LSTM (vocab 5000,
length 20), 10,000 oracle samples for training, NLL-oracle = the oracle's mean per-token NLL
of generator samples (5,000 by default), NLL-test = the generator's mean per-token NLL of the
oracle's 5,000 held-out samples. Both are reported: NLL-oracle alone rewards mode collapse.

What runs, in one process, all from one seed:

1. ``mle``: MLE pretraining (agent ``mle``) for ``--mle-epochs`` epochs. This checkpoint is
   the MLE baseline row and the starting point of every adversarial agent.
2. ``mle-continued`` (control): the same MLE run continued for ``--control-epochs`` more
   epochs (default: ``--adv-steps``, i.e. as many extra iterations as the adversarial agents
   get, an MLE iteration being an epoch), so that "adversarial training improved on MLE" can
   be told apart from "more training improved on MLE".
3. each adversarial agent (``seqgan``, ``maligan``, ``maligan-mixed``, ``scratchgan``,
   ``maskgan``) built with ``mle_epochs=0`` and its preset, overridden by this benchmark's
   budget (``adv_steps``, ``d_pretrain_steps``, ``d_steps``, ``d_epochs``, ``d_samples``,
   ``n_rollouts``, optional ``batch_size``); the MLE generator's ``state_dict`` is loaded into
   ``agent.generator`` and every generator-dependent state is re-synced (SeqGAN's delayed
   rollout policy β ← θ through ``RolloutCopy.load_state_dict``; the Adam optimizers hold the
   same parameter objects and have taken no step yet). Then its discriminator pretraining
   and ``--adv-steps`` adversarial steps run. ``scratchgan``'s preset trains from scratch
   (``mle_epochs=0``); here it starts from the MLE checkpoint like the others and gets the
   same discriminator pretraining rounds. ``maligan-mixed``'s clamp schedule
   (N = T - K·⌊i/every⌋, preset every=10 of 200 steps) is scaled to the budget:
   every = max(1, round(10 · adv_steps / 200)) unless ``--mixed-every`` is given.
4. ``ppo`` (Stable-Baselines3) acts with its own policy network (a GRU features extractor and
   SB3 heads), which cannot load the LSTM generator's weights: it runs FROM SCRATCH for
   ``--adv-steps`` iterations (each ``num_envs`` × 20 tokens plus SB3's update) and is
   labelled so; it is not counted in ``ratio``.

The last stdout line is one JSON object: {"benchmark": "oracle", "device", "seed", "budget",
"results": {agent: {"nll_oracle", "nll_test", "seconds", ...}}, "published", "oracle",
"ratio"}; ``ratio`` = NLL-oracle(MLE checkpoint) / best NLL-oracle of the adversarial agents
started from it (> 1: an adversarial agent improved on MLE). ``seconds`` is the agent's own
training time (discriminator pretraining + adversarial steps; the MLE row: pretraining),
without evaluation. A Markdown table goes to stderr and to ``--table PATH``.

CPU note: on a shared machine torch's default of one intra-op thread per core oversubscribes
the cores (measured here: an MLE minibatch 0.66 s with 2 threads vs 0.09 s with 1 while other
jobs ran), so ``--threads`` defaults to 1; ``--threads 0`` keeps torch's default.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from common import emit, log, parser

ADVERSARIAL = ["seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan"]
DEFAULT_AGENTS = [*ADVERSARIAL, "ppo"]
PUBLISHED = {"mle": 9.038, "seqgan": 8.736}  # Yu et al. 2017 (SeqGAN), NLL-oracle, length 20, this oracle
FULL = dict(mle_epochs=30, adv_steps=10, d_pretrain_steps=3, d_steps=1, d_epochs=1, d_samples=1000, n_rollouts=4,
            eval_samples=5000, train_size=10_000)
QUICK = dict(mle_epochs=1, adv_steps=1, d_pretrain_steps=1, d_steps=1, d_epochs=1, d_samples=64, n_rollouts=2,
             eval_samples=256, train_size=512, batch_size=16, num_envs=16)


def build_parser():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="seeds MLE, every agent and the evaluation samples")
    p.add_argument("--agents", nargs="+", default=None,
                   help=f"agents after MLE (default: {' '.join(DEFAULT_AGENTS)}); 'mle' is always run")
    p.add_argument("--mle-epochs", type=int, default=None, help=f"MLE pretraining epochs (default {FULL['mle_epochs']})")
    p.add_argument("--adv-steps", type=int, default=None, help=f"adversarial iterations per agent (default {FULL['adv_steps']})")
    p.add_argument("--control-epochs", type=int, default=None,
                   help="extra MLE epochs of the mle-continued control (default: --adv-steps; 0: no control)")
    p.add_argument("--d-pretrain-steps", type=int, default=None,
                   help=f"discriminator pretraining rounds (default {FULL['d_pretrain_steps']})")
    p.add_argument("--d-steps", type=int, default=None, help=f"discriminator rounds per adversarial step (default {FULL['d_steps']})")
    p.add_argument("--d-epochs", type=int, default=None, help=f"epochs over each round's data (default {FULL['d_epochs']})")
    p.add_argument("--d-samples", type=int, default=None, help=f"negatives (and reals) per round (default {FULL['d_samples']})")
    p.add_argument("--n-rollouts", type=int, default=None, help=f"SeqGAN MC rollouts per prefix (default {FULL['n_rollouts']})")
    p.add_argument("--batch-size", type=int, default=None, help="generator batch of every agent (default: each preset's)")
    p.add_argument("--mixed-every", type=int, default=None, help="maligan-mixed: N decreases every this many steps")
    p.add_argument("--eval-samples", type=int, default=None, help=f"samples for NLL-oracle (default {FULL['eval_samples']})")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--mle-checkpoint", default=None,
                   help="reuse the MLE generator saved here when its settings match; else train and save it")
    p.add_argument("--table", default=None, help="also write the Markdown table to this file")
    return p


# ---------------------------------------------------------------------------- helpers
def load_data(quick: bool, train_size: int):
    from textgym.data import OracleData, resolve_data

    if quick:  # the published oracle, few samples (seconds)
        return OracleData(n_train=train_size, n_test=256)
    data = resolve_data("oracle")
    if train_size < len(data.train):
        data = copy.copy(data)
        data.train, data.train_lengths = data.train[:train_size], data.train_lengths[:train_size]
    return data


def evaluate(generator: Any, data: Any, n: int, seed: int) -> Dict[str, float]:
    """NLL-oracle of n samples (the same sampling seed for every agent) and NLL-test."""
    from textgym.metrics import nll_oracle, nll_test

    t0 = time.perf_counter()
    out = {"nll_oracle": nll_oracle(generator, data.oracle, n, seed=seed),
           "nll_test": nll_test(generator, data.test, data.test_lengths)}
    out["eval_seconds"] = time.perf_counter() - t0
    return out


def fmt_stats(stats: Dict[str, Any]) -> str:
    keys = ("g_loss", "reward", "d_loss", "d_acc_real", "d_acc_fake", "clamp_length", "critic_loss", "episode_reward")
    return " ".join(f"{k}={stats[k]:.3f}" for k in keys if isinstance(stats.get(k), float))


def oracle_label(data: Any) -> str:
    src = str(getattr(data.oracle, "source", ""))
    return src if src and not src.startswith("fresh") else "fresh"


def adversarial_config(name: str, budget: Dict[str, Any], args) -> Dict[str, Any]:
    """The preset of ``name`` overridden by the budget (mle_epochs=0: it starts from the checkpoint)."""
    import agents

    preset = agents.preset(name)
    cfg: Dict[str, Any] = {"mle_epochs": 0, "adv_steps": budget["adv_steps"]}
    if name == "ppo":
        cfg.update(d_epochs=budget["d_epochs"])
        if budget.get("num_envs"):
            cfg["num_envs"] = budget["num_envs"]
        return cfg
    cfg.update({k: budget[k] for k in ("d_pretrain_steps", "d_steps", "d_epochs", "d_samples")})
    if preset.get("reward") == "mc":
        cfg["n_rollouts"] = budget["n_rollouts"]
    if budget.get("batch_size"):
        cfg["batch_size"] = budget["batch_size"]
    if name == "maligan-mixed":
        every = args.mixed_every
        if every is None:
            every = max(1, round(preset.get("mixed_every", 10) * budget["adv_steps"] / preset.get("adv_steps", 200)))
        cfg["mixed_every"] = int(every)
    return cfg


def describe(agent: Any, name: str) -> Dict[str, Any]:
    """The settings that define an agent's run (its resolved config, the keys a reader needs)."""
    keys = ("adv_steps", "g_steps", "batch_size", "gen_lr", "reward", "transform", "discriminator", "d_pretrain_steps",
            "d_steps", "d_epochs", "d_samples", "d_lr", "n_rollouts", "rollout_rate", "gamma", "baseline", "mixed_K",
            "mixed_every", "mixed_m", "num_envs", "learning_rate")
    c = agent.config
    out = {k: c[k] for k in keys if k in c and isinstance(c[k], (int, float, str))}
    if c.get("reward") != "mc":
        for k in ("n_rollouts", "rollout_rate"):  # read only by MC rewards
            out.pop(k, None)
    return out


# ---------------------------------------------------------------------------- phases
def run_mle(data, budget, args, device, eval_seed) -> tuple[Any, Dict[str, Any]]:
    import agents

    cfg = {"mle_epochs": budget["mle_epochs"]}
    mle = agents.make("mle", data, cfg, device=device, seed=args.seed)
    import hashlib

    fingerprint = hashlib.sha256(data.train.cpu().numpy().tobytes()).hexdigest()[:16]  # the training set itself
    meta = {"mle_epochs": budget["mle_epochs"], "seed": args.seed, "train_size": len(data.train), "train_sha256": fingerprint,
            "oracle": oracle_label(data), "batch_size": mle.config["batch_size"], "mle_lr": mle.config["mle_lr"]}
    ckpt = Path(args.mle_checkpoint) if args.mle_checkpoint else None
    seconds: Optional[float] = None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        if saved.get("meta") == meta:
            mle.load_state_dict(saved["state"])
            seconds = float(saved["seconds"])
            log(f"[mle] loaded the checkpoint {ckpt} ({budget['mle_epochs']} epochs, trained in {seconds:.1f} s)")
        else:
            log(f"[mle] {ckpt} holds other settings ({saved.get('meta')}); training anew")
    if seconds is None:
        t0 = time.perf_counter()
        while mle.iteration < mle.total_iterations:
            t1 = time.perf_counter()
            stats = mle.train_iteration()
            log(f"[mle] epoch {mle.iteration}/{mle.total_iterations} nll_train={stats['nll_train']:.3f} "
                f"({time.perf_counter() - t1:.1f} s)")
        seconds = time.perf_counter() - t0
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"meta": meta, "state": mle.state_dict(), "seconds": seconds}, ckpt)
    ev = evaluate(mle.generator, data, budget["eval_samples"], eval_seed)
    log(f"[mle] NLL-oracle {ev['nll_oracle']:.3f}  NLL-test {ev['nll_test']:.3f}  ({seconds:.1f} s, eval {ev['eval_seconds']:.1f} s)")
    res = {**ev, "seconds": seconds, "iterations": budget["mle_epochs"],
           "seconds_per_iteration": seconds / max(1, budget["mle_epochs"]), "start": "scratch",
           "config": {"mle_epochs": budget["mle_epochs"], "batch_size": mle.config["batch_size"], "mle_lr": mle.config["mle_lr"]}}
    return mle, res


def run_control(mle, state, data, budget, eval_seed) -> Dict[str, Any]:
    """MLE continued from the checkpoint for control_epochs more epochs (same agent, optimizer state)."""
    n = budget["control_epochs"]
    mle.load_state_dict(state)
    t0 = time.perf_counter()
    for i in range(n):
        t1 = time.perf_counter()
        stats = mle.train_iteration()
        log(f"[mle-continued] epoch {budget['mle_epochs'] + i + 1} nll_train={stats['nll_train']:.3f} ({time.perf_counter() - t1:.1f} s)")
    seconds = time.perf_counter() - t0
    ev = evaluate(mle.generator, data, budget["eval_samples"], eval_seed)
    log(f"[mle-continued] NLL-oracle {ev['nll_oracle']:.3f}  NLL-test {ev['nll_test']:.3f}  ({seconds:.1f} s)")
    return {**ev, "seconds": seconds, "iterations": n, "seconds_per_iteration": seconds / max(1, n),
            "start": "mle-checkpoint", "config": {"mle_epochs": budget["mle_epochs"] + n}}


def run_agent(name, data, budget, args, device, mle_generator_state, eval_seed) -> Dict[str, Any]:
    import agents

    cfg = adversarial_config(name, budget, args)
    agent = agents.make(name, data, cfg, device=device, seed=args.seed)
    from_mle = name != "ppo"
    if from_mle:
        agent.generator.load_state_dict(mle_generator_state)
        rc = getattr(agent, "rollout_copy", None)
        if rc is not None:  # SeqGAN's delayed rollout policy: β ← θ (it was copied from the random init)
            rc.load_state_dict({"policy": agent.generator.state_dict(), "updates": 0})
        for opt_name in ("gen_opt", "mle_opt"):  # fresh optimizers over the same parameter objects
            opt = getattr(agent, opt_name, None)
            if opt is not None and opt.state:
                raise RuntimeError(f"{name}.{opt_name} has state before training; cannot start from the checkpoint")
        assert all(torch.equal(a, b) for a, b in zip(agent.generator.state_dict().values(), mle_generator_state.values()))
    total = agent.total_iterations
    phases: Dict[str, List[float]] = {}
    t0 = time.perf_counter()
    while agent.iteration < total:
        t1 = time.perf_counter()
        stats = agent.train_iteration()
        dt = time.perf_counter() - t1
        phase = str(stats.get("phase", "adv"))
        phases.setdefault(phase, []).append(dt)
        for k, v in stats.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise FloatingPointError(f"{k} became {v} at iteration {agent.iteration}")
        log(f"[{name}] {phase} {agent.iteration}/{total} {fmt_stats(stats)} ({dt:.1f} s)")
    seconds = time.perf_counter() - t0
    ev = evaluate(agent.generator, data, budget["eval_samples"], eval_seed)
    log(f"[{name}] NLL-oracle {ev['nll_oracle']:.3f}  NLL-test {ev['nll_test']:.3f}  ({seconds:.1f} s, eval {ev['eval_seconds']:.1f} s)")
    res = {**ev, "seconds": seconds, "iterations": total, "start": "mle-checkpoint" if from_mle else "scratch",
           "config": describe(agent, name)}
    for phase, times in phases.items():
        res[f"seconds_per_{phase}_iteration"] = sum(times) / len(times)
    return res


# ---------------------------------------------------------------------------- report
def label(name: str, res: Dict[str, Any], budget: Dict[str, Any]) -> str:
    if name == "mle":
        return f"mle (checkpoint, {budget['mle_epochs']} epochs)"
    if name == "mle-continued":
        return f"mle-continued (control, +{budget['control_epochs']} epochs)"
    if res.get("start") == "scratch":
        return f"{name} (from scratch)"
    return name


def table(results: Dict[str, Dict[str, Any]], budget: Dict[str, Any]) -> str:
    def num(v: Any, digits: int) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"

    rows = ["| agent | NLL-oracle | NLL-test | seconds |", "|---|---:|---:|---:|"]
    for name, res in results.items():
        if "error" in res:
            rows.append(f"| {label(name, res, budget)} | failed: {res['error'][:60]} | – | – |")
        else:
            rows.append(f"| {label(name, res, budget)} | {num(res['nll_oracle'], 3)} | {num(res['nll_test'], 3)} | "
                        f"{num(res['seconds'], 0)} |")
    rows.append(f"| published: MLE (Yu et al. 2017) | {PUBLISHED['mle']:.3f} | – | – |")
    rows.append(f"| published: SeqGAN (Yu et al. 2017) | {PUBLISHED['seqgan']:.3f} | – | – |")
    return "\n".join(rows) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import agents

    names = list(dict.fromkeys(args.agents or DEFAULT_AGENTS))
    names = [n for n in names if n != "mle"]
    unknown = [n for n in names if n not in agents.available()]
    if unknown:
        print(f"error: unknown agent(s) {unknown}; valid: {agents.available()}", file=sys.stderr)
        return 2
    budget: Dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in ("mle_epochs", "adv_steps", "d_pretrain_steps", "d_steps", "d_epochs", "d_samples", "n_rollouts",
                "eval_samples", "batch_size"):
        v = getattr(args, key)
        if v is not None:
            budget[key] = v
    budget["control_epochs"] = budget["adv_steps"] if args.control_epochs is None else args.control_epochs
    eval_seed = args.seed * 100_003 + 12_345

    started = time.perf_counter()
    data = load_data(args.quick, budget["train_size"])
    budget["train_size"] = len(data.train)
    budget["test_size"] = len(data.test)
    budget["max_length"] = data.max_length
    log(f"oracle benchmark: oracle {oracle_label(data)}, {len(data.train)} train / {len(data.test)} test sequences, "
        f"device {device}, threads {torch.get_num_threads()}, seed {args.seed}, agents {names}, budget {budget}")

    results: Dict[str, Dict[str, Any]] = {}
    mle, results["mle"] = run_mle(data, budget, args, device, eval_seed)
    state = copy.deepcopy(mle.state_dict())
    gen_state = copy.deepcopy(mle.generator.state_dict())
    for name in names:
        log(f"---- {name}")
        try:
            results[name] = run_agent(name, data, budget, args, device, gen_state, eval_seed)
        except Exception as exc:  # report and go on with the others
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "nll_oracle": None, "nll_test": None, "seconds": None}
    if budget["control_epochs"] > 0:
        log("---- mle-continued")
        results["mle-continued"] = run_control(mle, state, data, budget, eval_seed)

    from_mle = {n: r for n, r in results.items() if n in names and r.get("start") == "mle-checkpoint"
                and isinstance(r.get("nll_oracle"), float)}
    best = min(from_mle, key=lambda n: from_mle[n]["nll_oracle"]) if from_mle else None
    ratio = results["mle"]["nll_oracle"] / from_mle[best]["nll_oracle"] if best else None
    md = table(results, budget)
    header = (f"Synthetic oracle benchmark (oracle: {oracle_label(data)}; device {device}; seed {args.seed}; "
              f"NLL-oracle on {budget['eval_samples']} samples, NLL-test on {budget['test_size']} held-out oracle "
              f"samples). Budget: MLE {budget['mle_epochs']} epochs on {budget['train_size']} sequences; then each "
              f"adversarial agent from that checkpoint: {budget['d_pretrain_steps']} D-pretraining rounds, "
              f"{budget['adv_steps']} adversarial steps, each with {budget['d_steps']} D round(s) of "
              f"{budget['d_samples']} fakes + {budget['d_samples']} reals × {budget['d_epochs']} epoch(s); SeqGAN "
              f"{budget['n_rollouts']} rollouts. Seconds: training only (no evaluation).\n\n")
    log("\n" + header + md)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(header + md)
    log(f"total wall time {time.perf_counter() - started:.0f} s; best adversarial: {best}; ratio {ratio}")
    emit({
        "benchmark": "oracle",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "quick": bool(args.quick),
        "budget": budget,
        "results": results,
        "published": PUBLISHED,
        "oracle": oracle_label(data),
        "best_adversarial": best,
        "ratio": ratio,
        "total_seconds": time.perf_counter() - started,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
