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
iteration, on a background thread: :class:`CheckpointWriter`), ``samples/`` (generated text
at each evaluation), ``generator.pt`` (for ``python -m textgym.evaluate --generator``) and,
once finished, ``summary.json`` (the final metrics under ``"metrics"``).

Warm start (``init_from``, a run folder): the parts named by ``init_parts`` (``generator``,
``discriminator``) are read from that run's ``checkpoint.pt`` through
:meth:`agents.base.Agent.warm_start`; optimizers, random streams and the iteration count start
fresh, and MLE pretraining is skipped unless ``mle_epochs`` is set explicitly.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from agents.base import Agent
from agents.config import CONFIG_FORMAT, Resolved, RunConfig
from textgym.data import Corpus, OracleData, TextData, resolve_data
from textgym.safeload import UnsafeFileError, load_data_only

CHECKPOINT_FORMAT = "textgym-checkpoint-v1"
EVAL_SEED_BASE = 7_919_000  #: evaluate_task's sampling seed is this plus the run's seed


class RunError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


# ---------------------------------------------------------------------------- data and agent
def load_data(run: RunConfig) -> TextData:
    """The run's data: the oracle benchmark, "oracle-classes" (MultiOracleData, k = 2), a corpus, or a
    labelled corpus (a file whose first line holds a TAB), cut to ``train_size`` sequences."""
    data: TextData
    if run.data == "oracle":
        if run.test_data:
            raise RunError("test_data applies to text corpora; the oracle benchmark has its own test set")
        data = resolve_data("oracle", run.max_length)
    elif run.data == "oracle-classes":  # class-conditional agents: k = 2 oracle LSTMs, one per class
        from textgym.classes import MultiOracleData

        if run.test_data:
            raise RunError("test_data applies to text corpora; the oracle-classes benchmark has its own test set")
        data = MultiOracleData(2, max_length=run.max_length or 20)
    else:
        try:
            if _is_labelled(run.data):  # label<TAB>sentence lines: a labelled corpus
                from textgym.classes import LabelledCorpus

                data = LabelledCorpus(run.data, run.test_data, max_length=run.max_length)
            else:
                data = Corpus(run.data, run.test_data, max_length=run.max_length)
        except FileNotFoundError as exc:
            raise RunError(str(exc)) from None
    n = run.train_size
    if n is not None and n < len(data.train):
        cut: Any = copy.copy(data)
        labels = getattr(data, "train_labels", None)
        if labels is None:
            cut.train, cut.train_lengths = data.train[:n], data.train_lengths[:n]
        else:  # the first n // k sequences of each class, so that every class keeps data
            k = int(cut.num_classes)
            keep = torch.cat([(labels == c).nonzero().squeeze(1)[: max(1, n // k)] for c in range(k)]).sort().values
            cut.train, cut.train_lengths, cut.train_labels = data.train[keep], data.train_lengths[keep], labels[keep]
        data = cut
    return data


def _is_labelled(path: str) -> bool:
    """Whether the first non-blank line of a text file holds a TAB (``label<TAB>sentence``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return "\t" in line
    except (FileNotFoundError, IsADirectoryError):
        return False
    return False


def data_fingerprint(data: TextData) -> Dict[str, Optional[str]]:
    """SHA-256 of the training tokens (as used, after ``train_size``) and of the vocabulary (corpora):
    a checkpoint resumes, and a run warm starts from another, only on the same data and ids."""
    vocab = getattr(data, "vocab", None)
    return {
        "train_sha256": hashlib.sha256(data.train.cpu().numpy().tobytes()).hexdigest(),
        "vocab_sha256": None if vocab is None else hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest(),
    }


def _check_same_data(path: Path, header: Dict[str, Any], data: TextData, run: RunConfig, what: str) -> None:
    theirs, ours = header.get("data"), data_fingerprint(data)
    if theirs is None:
        return  # a checkpoint of an earlier release: nothing recorded to compare
    keys = ("vocab_sha256",) if what == "warm start" else ("vocab_sha256", "train_sha256")
    names = {"vocab_sha256": "vocabulary", "train_sha256": "training data"}
    changed = [names[k] for k in keys if theirs.get(k) != ours.get(k)]
    if changed:
        raise RunError(f"{what} refused: the {' and the '.join(changed)} of {run.data} differ from those recorded in "
                       f"{path}; token ids would mean other words. Use the original data file, or start a new run")


def build_agent(resolved: Resolved, data: TextData, device: Union[str, torch.device]) -> Agent:
    """The agent of a resolved config (RunError for a config the agent refuses)."""
    import agents

    try:
        return agents.make(resolved.agent, data, resolved.config, device=device, seed=resolved.run.seed)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise RunError(str(exc)) from None


# ---------------------------------------------------------------------------- files
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


def run_values(resolved: Resolved) -> Dict[str, Any]:
    """The values that define a run (JSON-normalized): a checkpoint resumes only under the same."""
    return json.loads(json.dumps(resolved.to_json()["values"], sort_keys=True, default=str))


def checkpoint_parts(resolved: Resolved, agent: Agent, metrics_rows: int, data: TextData) -> Tuple[Dict[str, Any], bytes]:
    """(header without its checksum, body): the agent's state serialized now (tensors copied off
    the device), the part of a checkpoint that must see this iteration's state."""
    buf = io.BytesIO()
    torch.save({"agent": agent.state_dict()}, buf)
    header = {"format": CHECKPOINT_FORMAT, "agent": resolved.agent, "config": run_values(resolved),
              "data": data_fingerprint(data), "iteration": agent.iteration, "metrics_rows": metrics_rows,
              "device_type": agent.device.type}
    return header, buf.getvalue()


def write_checkpoint(path: Path, header: Dict[str, Any], body: bytes) -> None:
    """Checksum, frame and write atomically a checkpoint of :func:`checkpoint_parts`."""
    header = {**header, "sha256": hashlib.sha256(body).hexdigest()}
    out = io.BytesIO()
    # the body as a byte tensor: torch.save writes a tensor's storage as it is, while a bytes
    # object of this size goes through the pickler, several times slower
    torch.save({"header": header, "body": torch.frombuffer(bytearray(body), dtype=torch.uint8)}, out)
    atomic_write_bytes(path, out.getvalue())


class CheckpointWriter:
    """Writes each checkpoint's checksum, framing and file on a background thread.

    :meth:`save` serializes the agent's state at once (it must see this iteration's tensors)
    and returns; the rest (checksum, framing, the write and its fsync: most of a checkpoint's
    time for SeqGAN's discriminator, README) overlaps the next iteration. One write at a time: :meth:`save` first waits
    for the previous one, :meth:`close` for the last. A write that failed raises from the next
    :meth:`save` or from :meth:`close`. The file on disk is always a whole checkpoint (written
    atomically), at most one iteration behind the metrics; resume cuts the metrics back to the
    checkpoint's rows.
    """

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def save(self, path: Path, resolved: Resolved, agent: Agent, metrics_rows: int, data: TextData) -> None:
        self.close()
        header, body = checkpoint_parts(resolved, agent, metrics_rows, data)
        self._thread = threading.Thread(target=self._write, args=(path, header, body), name="checkpoint-writer")
        self._thread.start()

    def _write(self, path: Path, header: Dict[str, Any], body: bytes) -> None:
        try:
            write_checkpoint(path, header, body)
        except OSError as exc:  # handed to the training thread by close()
            self._error = RunError(f"could not write the checkpoint {path}: {exc}; the file there is the last "
                                   "checkpoint written whole")
            self._error.__cause__ = exc
        except BaseException as exc:
            self._error = exc

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for the write in flight; raise its error (unless ``raise_error`` is False)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error


def read_checkpoint(path: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(header, agent state) of a checkpoint, every tensor on the CPU; RunError for a missing,
    corrupt or foreign file.

    The CPU, whatever the run's device: ``torch.Generator.set_state`` takes CPU byte tensors
    only, and ``load_state_dict`` of modules and optimizers copies to their own device."""
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:  # tensors and plain data only, never an object whose unpickling runs code
        outer = load_data_only(path, f"checkpoint {path}")
        header, body = outer["header"], outer["body"]
        if isinstance(body, torch.Tensor) and body.dtype == torch.uint8 and body.dim() == 1:
            body = body.numpy().tobytes()  # checkpoints written before it was a tensor hold bytes
    except UnsafeFileError as exc:
        raise RunError(str(exc)) from None
    except Exception as exc:  # truncated zip, wrong structure
        raise RunError(f"checkpoint {path} is corrupt or not a textgym checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise RunError(f"checkpoint {path} has format {fmt!r}, expected {CHECKPOINT_FORMAT!r}")
    if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise RunError(f"checkpoint {path} is corrupt (its checksum does not match)")
    try:
        state = load_data_only(io.BytesIO(body), f"checkpoint {path}")["agent"]
    except UnsafeFileError as exc:
        raise RunError(str(exc)) from None
    return header, state


def load_agent_state(agent: Agent, path: Path, header: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Load a checkpoint's agent state (its RNG states included) into ``agent``; RunError when
    the checkpoint was written on another device type, whose generator states cannot drive
    this device's draws (checkpoints from before the device type was recorded: unchecked)."""
    written_on = header.get("device_type", agent.device.type)
    if written_on != agent.device.type:
        raise RunError(f"{path} was written by a run on {written_on}; load it with --device {written_on} "
                       f"(its random-number states are {written_on}'s and cannot drive {agent.device.type} draws)")
    agent.load_state_dict(state)


def _check_same_config(path: Path, header: Dict[str, Any], resolved: Resolved) -> None:
    theirs, ours = header["config"], run_values(resolved)
    # a field added since the checkpoint was written resumes at its default: the run had none
    new = {k for k in set(ours) - set(theirs) if resolved.sources.get(k) == "default"}
    diff = sorted(k for k in (set(theirs) | set(ours)) - new if theirs.get(k) != ours.get(k))
    if header.get("agent", resolved.agent) != resolved.agent:
        diff.insert(0, "agent")
        theirs, ours = {**theirs, "agent": header.get("agent")}, {**ours, "agent": resolved.agent}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {ours.get(k)!r}" for k in diff)
        raise RunError(f"checkpoint {path} belongs to another configuration ({detail})")


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
    _check_same_data(path, header, agent.data, run, "warm start")
    try:
        agent.warm_start(state, run.init_parts)
    except ValueError as exc:
        raise RunError(f"init_from {source}: {exc}") from None
    return {"init_from": str(source), "init_parts": list(run.init_parts), "source_agent": header.get("agent"),
            "source_iteration": header.get("iteration")}


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
    """
    from tqdm import tqdm

    folder = Path(out)
    run = resolved.run
    ckpt = folder / "checkpoint.pt"
    if resume:
        if not ckpt.is_file():
            raise RunError(f"--resume: no checkpoint at {ckpt}")
        summary_path = folder / "summary.json"
        if summary_path.is_file():
            finished_header, _ = read_checkpoint(ckpt)
            _check_same_config(ckpt, finished_header, resolved)
            done = json.loads(summary_path.read_text())
            if done.get("finished", True):
                return {**done, "already_finished": True}
    elif folder.exists() and any(folder.iterdir()):
        if ckpt.exists():
            raise RunError(f"{folder} already holds a run; pass --resume to continue it or choose another --out")
        if not _is_run_folder(folder):
            raise RunError(f"{folder} is not empty and holds no textgym run; choose another --out")
    data = load_data(run)
    agent = build_agent(resolved, data, device)
    for stale in folder.glob(".*.tmp-*") if folder.is_dir() else []:  # left by a kill during an atomic write
        stale.unlink(missing_ok=True)
    header: Optional[Dict[str, Any]] = None
    warm: Dict[str, Any] = {}
    if resume:
        header, state = read_checkpoint(ckpt)
        _check_same_config(ckpt, header, resolved)
        _check_same_data(ckpt, header, data, run, "resume")
        load_agent_state(agent, ckpt, header, state)
    elif run.init_from:
        warm = warm_start(agent, run)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "config.json", resolved.to_json())
    log = MetricsLog(folder, header["metrics_rows"] if header else 0, agent.iteration if header else None)

    total = agent.total_iterations
    every = run.eval_every
    stop = total if stop_after is None else min(total, agent.iteration + stop_after)
    started = time.time()
    train_seconds = 0.0
    bar = tqdm(total=total, initial=agent.iteration, desc=resolved.agent, disable=quiet, dynamic_ncols=True)
    last_eval: Dict[str, float] = {}
    last_d: Dict[str, float] = {}  # the discriminator's last held-out figures (d_heldout_acc, d_heldout_loss)
    if header is not None:
        last_d = {k: v for r in log.rows for k, v in r.items() if k.startswith("d_heldout") and isinstance(v, float)}
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
            writer.save(ckpt, resolved, agent, len(log.rows), data)
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
        "metrics": {**last_eval, **last_d}, "train_seconds": round(train_seconds, 3), "config": run_values(resolved), **warm,
    }
    if isinstance(data, OracleData):
        summary["oracle"] = str(data.oracle.source)
    if summary["finished"]:
        atomic_write_json(folder / "summary.json", summary)
    return summary
