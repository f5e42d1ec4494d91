#!/usr/bin/env python
"""Train a text generator: pick an agent, a data set, a reward; train; evaluate.

Examples:
    python train.py --agent seqgan --budget default                 # the synthetic oracle benchmark
    python train.py --agent mle --data corpus.txt --test-data test.txt --budget smoke
    python train.py --agent ppo --reward dense --discriminator oracle --num-envs 128
    python train.py --agent seqgan --out runs/a --resume            # continue runs/a from its checkpoint

Every run writes a run folder (``--out``): ``config.json`` (the resolved configuration),
``metrics.jsonl`` and ``metrics.csv`` (one row per iteration; evaluation rows carry the
metrics), ``tb/`` (TensorBoard), ``checkpoint.pt`` (written atomically), ``samples/``
(generated text at each evaluation) and ``summary.json`` (the final metrics).
"""
from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

# Budgets: how much work a run does. Agent presets set the algorithm's own hyperparameters;
# a budget sets sizes, and every value can be overridden by its own flag (or --set KEY=VALUE).
BUDGETS: Dict[str, Dict[str, Any]] = {
    "smoke": dict(mle_epochs=1, adv_steps=2, g_steps=1, d_pretrain_steps=1, d_steps=1, d_epochs=1,
                  d_samples=256, n_rollouts=2, train_size=512, eval_every=1, eval_samples=256,
                  eval_test_size=500, batch_size=64),
    "default": dict(mle_epochs=12, adv_steps=15, g_steps=1, d_pretrain_steps=2, d_steps=1, d_epochs=1,
                    d_samples=2000, n_rollouts=8, train_size=10_000, eval_every=3, eval_samples=2000,
                    batch_size=64),
    "paper": dict(mle_epochs=120, adv_steps=200, g_steps=1, d_pretrain_steps=50, d_steps=5, d_epochs=3,
                  d_samples=10_000, n_rollouts=16, train_size=10_000, eval_every=5, eval_samples=10_000,
                  batch_size=64),
}
# Keys that may differ between a run and its resumption.
VOLATILE = {"device", "out", "resume", "stop_after", "quiet"}
CHECKPOINT_FORMAT = "textgym-checkpoint-v1"


def parse_value(text: str) -> Any:
    """--set values: JSON when it parses (numbers, true/false, lists, dicts), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    import agents

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default="seqgan", help=f"the algorithm: one of {agents.available()}")
    p.add_argument("--data", default="oracle", help="'oracle' (the SeqGAN synthetic benchmark) or a text file, one sentence per line")
    p.add_argument("--test-data", default=None, help="held-out text file for NLL-test/BLEU (corpora; the oracle has its own)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per sequence (oracle: 20; corpora: longest + 1)")
    p.add_argument("--reward", default=None, help="reward mode for RL agents: terminal, mc or dense (agent preset by default)")
    p.add_argument("--transform", default=None, help="reward transform: prob, log, logit, maligan, identity")
    p.add_argument("--discriminator", default=None,
                   help="the scorer: a discriminator name (cnn, rnn) or 'oracle' (the oracle's log-likelihood; oracle data only)")
    p.add_argument("--budget", default="default", choices=sorted(BUDGETS), help="how much work: smoke (seconds), default (minutes), paper")
    p.add_argument("--mle-epochs", type=int, default=None, help="MLE (pre)training epochs")
    p.add_argument("--adv-steps", type=int, default=None, help="adversarial / RL iterations")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per generator batch")
    p.add_argument("--n-rollouts", type=int, default=None, help="Monte-Carlo rollouts per prefix (SeqGAN)")
    p.add_argument("--num-envs", type=int, default=None, help="parallel sequences of the env (SB3 agents)")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N iterations (and at the end)")
    p.add_argument("--eval-samples", type=int, default=None, help="samples drawn for NLL-oracle / BLEU")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (JSON values), e.g. --set gen_lr=0.001 --set gamma=0.95")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0, help="seeds everything; the same seed on CPU gives the same run")
    p.add_argument("--out", default=None, help="run folder (default runs/<agent>-<data>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many iterations (resumable later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def resolve_config(args: argparse.Namespace) -> Dict[str, Any]:
    """Budget preset ∪ explicit flags ∪ --set overrides (agent defaults are filled in by the agent)."""
    cfg: Dict[str, Any] = copy.deepcopy(BUDGETS[args.budget])
    flags = {"mle_epochs": args.mle_epochs, "adv_steps": args.adv_steps, "batch_size": args.batch_size,
             "n_rollouts": args.n_rollouts, "num_envs": args.num_envs, "eval_every": args.eval_every,
             "eval_samples": args.eval_samples, "reward": args.reward, "transform": args.transform,
             "discriminator": args.discriminator, "max_length": args.max_length}
    cfg.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"error: --set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        cfg[k.strip().replace("-", "_")] = parse_value(v)
    if args.discriminator == "oracle":
        cfg["reward_scorer"] = "oracle"
        cfg.pop("discriminator")
    cfg.update(agent=args.agent, data=args.data, test_data=args.test_data, seed=args.seed, budget=args.budget)
    return cfg


# ---------------------------------------------------------------------------- data
def load_data(cfg: Dict[str, Any]):
    from textgym.data import Corpus, resolve_data

    if cfg["data"] == "oracle":
        data = resolve_data("oracle", cfg.get("max_length"))
        if cfg.get("test_data"):
            raise SystemExit("error: --test-data applies to text corpora; the oracle benchmark has its own test set")
    else:
        data = Corpus(cfg["data"], cfg.get("test_data"), max_length=cfg.get("max_length"))
    n = cfg.get("train_size")
    if n is not None and n < len(data.train):
        data = copy.copy(data)
        data.train, data.train_lengths = data.train[:n], data.train_lengths[:n]
    return data


# ---------------------------------------------------------------------------- run folder
def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def save_checkpoint(path: Path, cfg: Dict[str, Any], agent, metrics_rows: int) -> None:
    buf = io.BytesIO()
    torch.save({"agent": agent.state_dict()}, buf)
    body = buf.getvalue()
    header = {"format": CHECKPOINT_FORMAT, "config": stable(cfg), "iteration": agent.iteration,
              "metrics_rows": metrics_rows, "sha256": hashlib.sha256(body).hexdigest()}
    out = io.BytesIO()
    torch.save({"header": header, "body": body}, out)
    atomic_write_bytes(path, out.getvalue())


def load_checkpoint(path: Path, cfg: Dict[str, Any], device: torch.device) -> tuple[dict, dict]:
    """(header, agent state) from ``path``; refuses corrupt files and other configurations."""
    if not path.is_file():
        raise SystemExit(f"error: --resume: no checkpoint at {path}")
    try:
        outer = torch.load(path, map_location=device, weights_only=False)
        header, body = outer["header"], outer["body"]
    except Exception as exc:  # truncated zip, pickle errors, wrong structure
        raise SystemExit(f"error: checkpoint {path} is corrupt or not a textgym checkpoint ({type(exc).__name__}: {exc})")
    if header.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"error: checkpoint {path} has format {header.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise SystemExit(f"error: checkpoint {path} is corrupt (its checksum does not match)")
    theirs, ours = header["config"], stable(cfg)
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {ours.get(k)!r}" for k in diff)
        raise SystemExit(f"error: checkpoint {path} belongs to another configuration ({detail})")
    state = torch.load(io.BytesIO(body), map_location=device, weights_only=False)["agent"]
    return header, state


def stable(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The configuration that defines a run (JSON-normalized, without volatile keys)."""
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in VOLATILE}, sort_keys=True, default=str))


class MetricsLog:
    """metrics.jsonl (source of truth, append-only), metrics.csv and TensorBoard."""

    def __init__(self, folder: Path, keep_rows: Optional[int], purge_step: Optional[int]) -> None:
        self.jsonl = folder / "metrics.jsonl"
        self.csv = folder / "metrics.csv"
        rows: List[dict] = []
        if keep_rows is not None and self.jsonl.exists():
            rows = [json.loads(line) for line in self.jsonl.read_text().splitlines()[:keep_rows]]
        self.rows = rows
        atomic_write_bytes(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows).encode())
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(folder / "tb"), purge_step=purge_step)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "iteration":
                self.tb.add_scalar(k, v, row["iteration"])

    def write_csv(self) -> None:
        keys: List[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.csv, buf.getvalue().encode())

    def close(self) -> None:
        self.write_csv()
        self.tb.close()


# ---------------------------------------------------------------------------- evaluation
def evaluate(agent, data, cfg: Dict[str, Any], folder: Path) -> Dict[str, float]:
    """NLL-oracle and NLL-test on oracle data; NLL-test, BLEU and Self-BLEU on corpora. Seeded by
    (seed, iteration) through its own generator, so evaluation never perturbs training."""
    from textgym.data import OracleData
    from textgym.metrics import masked_nll, nll_test, sample_sequences, sequence_log_probs

    gen = agent.generator
    seed = cfg["seed"] * 100_003 + agent.iteration
    n = int(cfg.get("eval_samples", 2000))
    out: Dict[str, float] = {}
    tokens, lengths = sample_sequences(gen, n, seed=seed)
    if isinstance(data, OracleData):
        oracle_lp = sequence_log_probs(data.oracle, tokens.to(data.oracle.Wo.device), lengths.to(data.oracle.Wo.device))
        out["nll_oracle"] = masked_nll(oracle_lp, lengths)  # NLL-oracle of these samples
    if data.test is not None:
        k = cfg.get("eval_test_size") or len(data.test)
        out["nll_test"] = nll_test(gen, data.test[:k], data.test_lengths[:k])
    if not isinstance(data, OracleData):  # BLEU-4 of 500 samples against every reference, Self-BLEU-4 among them
        from textgym.bleu import bleu, self_bleu

        hyps = [data.decode(r[: int(L)].tolist()).split() for r, L in zip(tokens[:500], lengths[:500])]
        ref_t, ref_l = (data.test, data.test_lengths) if data.test is not None else (data.train, data.train_lengths)
        refs = [data.decode(r[: int(L)].tolist()).split() for r, L in zip(ref_t, ref_l)]
        out["bleu4"] = bleu(hyps, refs, 4)
        out["self_bleu4"] = self_bleu(hyps, 4)
    samples = folder / "samples"
    samples.mkdir(exist_ok=True)
    text = "".join(data.decode(r[: int(L)].tolist()) + "\n" for r, L in zip(tokens[:50], lengths[:50]))
    atomic_write_bytes(samples / f"iter_{agent.iteration:05d}.txt", text.encode())
    export_generator_file(agent, data, folder)
    return out


def export_generator_file(agent, data, folder: Path) -> None:
    """``generator.pt`` for ``python -m textgym.evaluate --generator`` (our LSTM generator only)."""
    from agents.generator import Generator
    from textgym.evaluate import export_generator

    gen = agent.generator
    if isinstance(gen, Generator):
        kwargs = dict(vocab_size=gen.vocab_size, max_length=gen.max_length, eos_id=gen.eos_id,
                      emb_dim=gen.emb_dim, hidden_dim=gen.hidden_dim)
        buf = io.BytesIO()
        torch.save(export_generator(gen, kwargs, getattr(data, "vocab", None)), buf)
        atomic_write_bytes(folder / "generator.pt", buf.getvalue())


# ---------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    import agents
    from tqdm import tqdm

    args = build_parser().parse_args(argv)
    if args.agent not in agents.available():
        print(f"error: unknown agent {args.agent!r}; valid agents: {', '.join(agents.available())}", file=sys.stderr)
        return 2
    cfg = resolve_config(args)
    device = torch.device(args.device)
    folder = Path(args.out or f"runs/{args.agent}-{Path(str(args.data)).stem}-s{args.seed}")
    if folder.exists() and (folder / "checkpoint.pt").exists() and not args.resume:
        print(f"error: {folder} already holds a run; pass --resume to continue it or choose another --out", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)

    try:
        data = load_data(cfg)
        agent = agents.make(args.agent, data, cfg, device=device, seed=args.seed)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    header = None
    if args.resume:
        header, state = load_checkpoint(folder / "checkpoint.pt", cfg, device)
        agent.load_state_dict(state)
    atomic_write_json(folder / "config.json", {**stable(cfg), "resolved_agent_config": agent.config})
    log = MetricsLog(folder, header["metrics_rows"] if header else 0, agent.iteration if header else None)

    total = agent.total_iterations
    every = max(1, int(cfg.get("eval_every", 1)))
    stop = total if args.stop_after is None else min(total, agent.iteration + args.stop_after)
    started = time.time()
    bar = tqdm(total=total, initial=agent.iteration, desc=args.agent, disable=args.quiet, dynamic_ncols=True)
    last_eval: Dict[str, float] = {}
    if agent.iteration == 0:  # metrics of the untrained generator, the curves' first point
        last_eval = evaluate(agent, data, cfg, folder)
        log.add({"iteration": 0, "phase": "init", **last_eval})
    try:
        while agent.iteration < stop:
            stats = agent.train_iteration()
            for k, v in stats.items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise FloatingPointError(f"{k} became {v} at iteration {agent.iteration}")
            row = {"iteration": agent.iteration, **stats, "time": round(time.time() - started, 3)}
            if agent.iteration % every == 0 or agent.iteration == total:
                last_eval = evaluate(agent, data, cfg, folder)
                row.update(last_eval)
            log.add(row)
            save_checkpoint(folder / "checkpoint.pt", cfg, agent, len(log.rows))
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in {**stats, **last_eval}.items() if isinstance(v, float)}, refresh=False)
    except FloatingPointError as exc:
        bar.close()
        log.close()
        print(f"error: training diverged: {exc}; the last good checkpoint is {folder / 'checkpoint.pt'}", file=sys.stderr)
        return 3
    bar.close()
    log.close()
    if agent.iteration < total:
        print(f"stopped after iteration {agent.iteration}/{total}; continue with --resume --out {folder}")
        return 0
    summary = {"agent": args.agent, "data": str(args.data), "seed": args.seed, "iterations": agent.iteration,
               "device": str(device), "metrics": last_eval, "config": stable(cfg)}
    from textgym.data import OracleData

    if isinstance(data, OracleData):
        summary["oracle"] = data.oracle.source
    atomic_write_json(folder / "summary.json", summary)
    print(json.dumps({"agent": args.agent, "iterations": agent.iteration, **last_eval}))
    print(f"run folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
