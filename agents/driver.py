"""The one training driver: data, agent, warm start, evaluation, run folder, checkpoints, resume.

``train.py``, ``bench/oracle.py`` and any later study call :func:`train` with a
:class:`agents.config.Resolved` configuration::

    from agents import preset
    from agents.config import resolve
    from agents.driver import train

    summary = train(resolve(preset("seqgan"), "smoke", explicit={"seed": 1}), "runs/seqgan-s1")

A run folder holds ``config.json`` (every resolved value and its source; ``train.py --config``
reruns it), ``metrics.jsonl`` and ``metrics.csv`` (one row per iteration, evaluation rows carry
the metrics), ``tb/`` (TensorBoard), ``checkpoint.pt`` (written atomically after every
iteration, on a background thread: :class:`agents.checkpoints.CheckpointWriter`), ``samples/`` (generated text
at each evaluation), ``generator.pt`` (for ``python -m textgym.evaluate --generator``) and,
once finished, ``summary.json`` (the final metrics under ``"metrics"``).

Warm start (``init_from``, a run folder): the parts named by ``init_parts`` (``generator``,
``discriminator``) are read from that run's ``checkpoint.pt`` through
:meth:`agents.base.Agent.warm_start`; optimizers, random streams and the iteration count start
fresh, and MLE pretraining is skipped unless ``mle_epochs`` is set explicitly.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from agents.base import Agent
from agents.checkpoints import (
    LOCK_NAME,
    CheckpointWriter,
    RunError,
    check_same_config,
    check_same_data,
    claim_run_folder,
    load_agent_state,
    read_checkpoint,
    run_values,
)
from agents.conditional import ConditionalAgent
from agents.config import CONFIG_FORMAT, Resolved, RunConfig
from textgym.allocator import keep_freed_memory
from textgym.classes import num_classes_of, read_corpus
from textgym.data import CORPORA, OracleData, TextData, corpus_files, refuse_misspelled_name, resolve_data
from textgym.paths import atomic_write_bytes, atomic_write_json, is_temporary
from textgym.protocols import usable_device

EVAL_SEED_BASE = 7_919_000  #: evaluate_task's sampling seed is this plus the run's seed


# ---------------------------------------------------------------------------- data and agent
def load_data(run: RunConfig) -> TextData:
    """The run's data: the oracle benchmark, "oracle-classes" (MultiOracleData, k = 2), a named corpus
    (``textgym.data.CORPORA``), a corpus file or a labelled corpus (:func:`textgym.classes.read_corpus`),
    cut to ``train_size`` sequences."""
    data: TextData
    if run.data in ("oracle", "oracle-classes") and run.test_data:
        raise RunError(f"test_data applies to text corpora; the {run.data} benchmark has its own test set")
    try:
        if run.data in ("oracle", "oracle-classes"):  # the latter for class-conditional agents: k = 2 oracles
            data = resolve_data(run.data, run.max_length)
        else:
            train, test = run.data, run.test_data
            refuse_misspelled_name(train)
            if train in CORPORA:  # a named corpus: its files, and its test split unless test_data is given
                named = corpus_files(train)
                train, test = str(named[0]), test or str(named[1])
            data = read_corpus(train, test, max_length=run.max_length)
    except (FileNotFoundError, ValueError) as exc:  # a missing, empty, binary or malformed file; TEXTGYM_DATA
        raise RunError(str(exc)) from None
    n = run.train_size
    if n is not None and n < len(data.train):
        k = num_classes_of(data)
        if k is None:
            keep = torch.arange(n)
        else:  # the first n // k sequences of each class, so that every class keeps data
            labels = data.train_labels  # type: ignore[attr-defined]
            keep = torch.cat([(labels == c).nonzero().squeeze(1)[: max(1, n // k)] for c in range(k)]).sort().values
        data = data.train_subset(keep)
    return data


def build_agent(resolved: Resolved, data: TextData, device: Union[str, torch.device]) -> Agent:
    """The agent of a resolved config (RunError for a config the agent refuses)."""
    import agents

    try:
        agent = agents.make(resolved.agent, data, resolved.config, device=device, seed=resolved.run.seed)
        check = getattr(agent, "check_evaluation", None)  # what its evaluations would refuse, before any work
        if check is not None:
            check(resolved.run.eval_test_size)
        return agent
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise RunError(str(exc)) from None


class MetricsLog:
    """metrics.jsonl (source of truth, append-only), metrics.csv and TensorBoard."""

    def __init__(self, folder: Path, keep_rows: Optional[int], purge_step: Optional[int]) -> None:
        self.jsonl = folder / "metrics.jsonl"
        self.csv = folder / "metrics.csv"
        rows: List[dict] = []
        if keep_rows and self.jsonl.exists():
            for i, line in enumerate(self.jsonl.read_bytes().splitlines()[:keep_rows]):
                try:
                    row = json.loads(line.decode())
                except ValueError:  # UnicodeDecodeError is one
                    row = None
                if not isinstance(row, dict):
                    raise RunError(f"{self.jsonl} line {i + 1} is corrupt (not a JSON object), but the checkpoint counts "
                                   f"{keep_rows} rows as written; repair or delete that line to resume")
                rows.append(row)
        if keep_rows and len(rows) < keep_rows:
            warnings.warn(f"{self.jsonl} holds {len(rows)} of the {keep_rows} rows the checkpoint counts; the curves "
                          "of the missing iterations are lost (the run itself resumes exactly)", stacklevel=3)
        self.rows = rows
        atomic_write_bytes(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows).encode())
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(folder / "tb"), purge_step=purge_step)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())  # on disk before the checkpoint that counts it (which is fsynced too)
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "iteration":
                self.tb.add_scalar(k, v, row["iteration"])

    def close(self) -> None:
        keys: List[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.csv, buf.getvalue().encode())
        self.tb.close()


# ---------------------------------------------------------------------------- evaluation
def evaluate(agent: Agent, data: TextData, run: RunConfig, folder: Path) -> Dict[str, float]:
    """:func:`textgym.evaluate.evaluate_generator` of the agent's generator, seeded by (seed,
    iteration) through its own generator (evaluation never perturbs training); writes 50
    samples to ``samples/`` and ``generator.pt``. An agent with an ``evaluate_task(n_samples,
    test_size, seed) -> (metrics, lines)`` method (in-filling and class-conditional agents) is
    evaluated by it, with common random numbers: the seed depends on the run's seed only."""
    from textgym.evaluate import evaluate_generator

    samples = folder / "samples"
    samples.mkdir(exist_ok=True)
    seed = run.seed * 100_003 + agent.iteration
    task = getattr(agent, "evaluate_task", None)
    if task is not None:  # an agent with a task of its own (in-filling, classes) reports that task's metrics,
        # from samples seeded by the run's seed alone: every iteration and every run of that seed draws
        # with the same random numbers, so that differences between them are the models' own
        metrics, lines = task(run.eval_samples, run.eval_test_size, EVAL_SEED_BASE + run.seed)
        atomic_write_bytes(samples / f"iter_{agent.iteration:05d}.txt", "".join(f"{x}\n" for x in lines).encode())
        return metrics
    ev = evaluate_generator(agent.generator, data, n_samples=run.eval_samples, seed=seed,
                            test_size=run.eval_test_size, bleu_samples=run.bleu_samples)
    uniform = math.log(data.vocab_size)  # the per-token NLL of a uniform model
    for k in ("nll_test", "nll_oracle"):
        v = ev.metrics.get(k)
        if v is not None and not v < 3 * uniform:
            warnings.warn(f"{k} is {v:.4g} at iteration {agent.iteration}, far above a uniform model's {uniform:.2f}: "
                          "training has probably diverged (lower the learning rates)", RuntimeWarning, stacklevel=2)
    text = "".join(data.decode(r[: int(n)].tolist()) + "\n" for r, n in zip(ev.tokens[:50], ev.lengths[:50], strict=True))
    atomic_write_bytes(samples / f"iter_{agent.iteration:05d}.txt", text.encode())
    export_generator_file(agent, data, folder)
    return ev.metrics


def export_generator_file(agent: Agent, data: TextData, folder: Path) -> None:
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


# ---------------------------------------------------------------------------- the loop
def _last_evaluation(rows: List[dict]) -> Dict[str, float]:
    """The metrics of the last evaluation among the logged rows (the first row, iteration 0, holds
    an evaluation and nothing else): what a resumed run reports when it has no iteration left."""
    keys = [k for k in rows[0] if k not in ("iteration", "phase")] if rows else []
    for row in reversed(rows):
        if keys and all(k in row for k in keys):
            return {k: row[k] for k in keys}
    return {}


def _is_run_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("format") == CONFIG_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def warm_start(agent: Agent, run: RunConfig) -> Dict[str, Any]:
    """Load ``run.init_parts`` of the run folder ``run.init_from`` into ``agent`` (its vocabulary
    must be this run's); returns what was taken."""
    assert run.init_from is not None
    source = Path(run.init_from)
    path = source / "checkpoint.pt" if source.is_dir() else source
    header, state = read_checkpoint(path)
    check_same_data(path, header, agent.data, run, "warm start", classes=isinstance(agent, ConditionalAgent))
    policy = state.get("policy")
    if "generator" not in state and isinstance(policy, dict):  # an SB3 run of the generator policy: its actor
        generator = {k.removeprefix("generator."): v for k, v in policy.items() if k.startswith("generator.")}
        state = {**state, "generator": generator} if generator else state
    try:
        agent.warm_start(state, run.init_parts)
    except ValueError as exc:
        hint = ("; the sizes are this run's config (emb_dim, hidden_dim, ...): give it the source run's, which its "
                f"{source / 'config.json' if source.is_dir() else 'config.json'} records") if "shapes differ" in str(exc) else ""
        from agents import PRESETS

        theirs = PRESETS.get(str(header.get("agent")))
        if theirs is not None and issubclass(theirs.agent, ConditionalAgent) != isinstance(agent, ConditionalAgent):
            hint = ("; a class-conditional generator (which reads each sequence's class) and an unconditional one "
                    "take different inputs: warm start from a run of the same kind")
        raise RunError(f"init_from {source} (a {header.get('agent')} run): {exc}{hint}") from None
    return {"init_from": str(source), "init_parts": list(run.init_parts), "source_agent": header.get("agent"),
            "source_iteration": header.get("iteration"), "source_sha256": header.get("sha256")}


def train(
    resolved: Resolved,
    out: Union[str, Path],
    *,
    device: Union[str, torch.device] = "cpu",
    resume: bool = False,
    stop_after: Optional[int] = None,
    quiet: bool = False,
    on_iteration: Optional[Callable[[Agent, Dict[str, Any], float], None]] = None,
) -> Dict[str, Any]:
    """Run (or resume) a resolved configuration in the run folder ``out``; returns the summary.

    Args:
        resolved: from :func:`agents.config.resolve`.
        out: the run folder (created; a folder that holds something else is refused).
        device: where the agent's tensors live.
        resume: continue from ``out/checkpoint.pt`` (its config must equal ``resolved``); a
            finished run is reported as finished and left untouched.
        stop_after: stop after this many iterations (resumable later); the summary then has
            ``"finished": False``.
        quiet: no progress bar.
        on_iteration: called after every iteration with (agent, stats, seconds of training).

    Raises:
        RunError: anything that keeps the run from starting or going on (the message says
            why); FloatingPointError when training diverges (the last good checkpoint stays).

    For the run, glibc keeps freed blocks for reuse (:func:`textgym.allocator.keep_freed_memory`)
    and float32 matrix products on CUDA may use TF32 exactly when ``resolved.run.tf32`` (torch's
    flag is restored afterwards; cuDNN's convolutions keep torch's own setting).
    """
    try:
        device = usable_device(device)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    keep_freed_memory()  # reuse freed pages instead of faulting fresh ones in at every step
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(resolved.run.tf32)
    try:
        with claim_run_folder(Path(out)):
            return _train(resolved, Path(out), device, resume, stop_after, quiet, on_iteration)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _train(resolved: Resolved, folder: Path, device: torch.device, resume: bool, stop_after: Optional[int], quiet: bool,
           on_iteration: Optional[Callable[[Agent, Dict[str, Any], float], None]]) -> Dict[str, Any]:
    """The body of :func:`train`."""
    from tqdm import tqdm

    run = resolved.run
    ckpt = folder / "checkpoint.pt"
    if resume:
        if not ckpt.is_file():
            left = [p for p in folder.iterdir() if p.name != LOCK_NAME] if folder.is_dir() else []
            begun = (_is_run_folder(folder) and not (folder / "summary.json").exists()) or (
                left and all(is_temporary(p) for p in left))  # a run killed before its first checkpoint
            raise RunError(f"--resume: no checkpoint at {ckpt}" + (
                "; the run stopped before its first checkpoint: start it again, without --resume" if begun else ""))
        summary_path = folder / "summary.json"
        if summary_path.is_file():
            finished_header, _ = read_checkpoint(ckpt)
            check_same_config(ckpt, finished_header, resolved)
            try:
                done = json.loads(summary_path.read_text())
            except ValueError:
                raise RunError(f"{summary_path} is corrupt (not JSON); delete it and resume again to write it anew "
                               "(the checkpoint holds the finished run)") from None
            if isinstance(done, dict) and done.get("finished", True):
                ours = json.loads(json.dumps(finished_header.get("config"), default=str))  # as the summary holds it
                if done.get("iterations") != finished_header.get("iteration") or done.get("config", ours) != ours:
                    raise RunError(f"{summary_path} does not match the checkpoint (its iterations or configuration "
                                   "differ): it belongs to another run; delete it and resume again")
                return {**done, "already_finished": True}
    elif any(p.name != LOCK_NAME and not is_temporary(p) for p in folder.iterdir()):  # a kill's temporary files
        if ckpt.exists():
            raise RunError(f"{folder} already holds a run; pass --resume to continue it or choose another --out")
        if (folder / "summary.json").exists():  # its checkpoint deleted: a new run would overwrite its curves
            raise RunError(f"{folder} holds a finished run (summary.json) whose checkpoint is gone; choose another "
                           "--out (or delete that folder)")
        if not _is_run_folder(folder):
            raise RunError(f"{folder} is not empty and holds no textgym run; choose another --out")
    data = load_data(run)
    agent = build_agent(resolved, data, device)
    classes = num_classes_of(data)
    if classes is not None and not isinstance(agent, ConditionalAgent) and run.data != "oracle-classes":
        warnings.warn(f"{run.data} is a labelled corpus ('label<TAB>sentence' lines, {classes} classes): {resolved.agent} is "
                      "not class-conditional and trains on the sentences alone", stacklevel=2)
    for place in (folder, folder / "samples"):  # temporary files left by a kill during an atomic write
        for stale in [p for p in place.iterdir() if is_temporary(p)] if place.is_dir() else []:
            stale.unlink(missing_ok=True)
    header: Optional[Dict[str, Any]] = None
    warm: Dict[str, Any] = {}
    if resume:
        header, state = read_checkpoint(ckpt)
        check_same_config(ckpt, header, resolved)
        check_same_data(ckpt, header, data, run, "resume", classes=isinstance(agent, ConditionalAgent))
        load_agent_state(agent, ckpt, header, state)
        warm = dict(header.get("warm_start") or {})  # what the first session took, for the summary
    elif run.init_from:
        warm = warm_start(agent, run)
    folder.mkdir(parents=True, exist_ok=True)
    if not (resume and (folder / "config.json").is_file()):  # a resume keeps where each value came from
        atomic_write_json(folder / "config.json", resolved.to_json())
    # TensorBoard drops the events from purge_step on: those of iterations after the checkpoint's
    # (0 for a new start: a session stopped before its first checkpoint may have left events in tb/)
    log = MetricsLog(folder, header["metrics_rows"] if header else 0, agent.iteration + 1 if header else 0)

    total = agent.total_iterations
    every = run.eval_every
    stop = total if stop_after is None else min(total, agent.iteration + stop_after)
    started = time.time()
    train_seconds = float(header.get("train_seconds", 0.0)) if header else 0.0  # earlier sessions' time
    bar = tqdm(total=total, initial=agent.iteration, desc=resolved.agent, disable=quiet, dynamic_ncols=True)
    last_eval: Dict[str, float] = {}
    last_d: Dict[str, float] = {}  # the discriminator's last held-out figures (d_heldout_acc, d_heldout_loss)
    if header is not None:
        last_d = {k: v for r in log.rows for k, v in r.items() if k.startswith("d_heldout") and isinstance(v, float)}
        last_eval = _last_evaluation(log.rows)
    if agent.iteration == 0:  # metrics of the starting generator, the curves' first point
        last_eval = evaluate(agent, data, run, folder)
        log.add({"iteration": 0, "phase": "init", **last_eval})
    writer = CheckpointWriter()
    failed = True
    try:
        while agent.iteration < min(stop, agent.total_iterations):  # early stopping may lower the total
            t0 = time.perf_counter()
            stats = agent.train_iteration()
            dt = time.perf_counter() - t0
            train_seconds += dt
            for k, v in stats.items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise FloatingPointError(f"{k} became {v} at iteration {agent.iteration}")
            last_d.update({k: v for k, v in stats.items() if k.startswith("d_heldout") and isinstance(v, float)})
            row = {"iteration": agent.iteration, **stats, "time": round(time.time() - started, 3)}
            total = agent.total_iterations
            if agent.iteration % every == 0 or agent.iteration == total:
                last_eval = evaluate(agent, data, run, folder)
                row.update(last_eval)
            log.add(row)
            writer.save(ckpt, resolved, agent, len(log.rows), data, train_seconds, warm)
            if on_iteration is not None:
                on_iteration(agent, stats, dt)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in {**stats, **last_eval}.items() if isinstance(v, float)},
                            refresh=False)
        failed = False
    finally:
        bar.close()
        log.close()
        writer.close(raise_error=not failed)  # an error in flight is the one to see
    summary: Dict[str, Any] = {
        "agent": resolved.agent, "data": run.data, "seed": run.seed, "iterations": agent.iteration,
        "total_iterations": total, "finished": agent.iteration >= total, "device": str(device),
        # the last evaluation wins: the class-conditional agents score their discriminator there
        "metrics": {**last_d, **last_eval}, "train_seconds": round(train_seconds, 3), "config": run_values(resolved), **warm,
    }
    if isinstance(data, OracleData):
        summary["oracle"] = str(data.oracle.source)
    if summary["finished"]:
        atomic_write_json(folder / "summary.json", summary)
    return summary
