"""Running a study: each cell trained (or resumed) through the driver and evaluated over the
temperatures; the records of a study folder collected."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from agents.checkpoints import FolderInUse, RunError, load_agent_state, read_checkpoint
from agents.conditional import ConditionalAgent
from agents.config import Resolved, RunConfig
from agents.driver import build_agent, load_data, train
from agents.infill import InfillAgent
from textgym.data import OracleData, TextData
from textgym.paths import atomic_write_json
from textgym.plots import read_metrics
from textgym.protocols import usable_device
from textgym.study.report import write_outputs
from textgym.study.spec import (
    RECORD_FORMAT,
    Cell,
    StudyError,
    StudySpec,
    Task,
    _run_values,
    _thaw,
    expand,
    resolved_for,
    shard_cells,
    task_of,
)


# ---------------------------------------------------------------------------- one run
def _curves(folder: Path, task: Task) -> List[Dict[str, Any]]:
    keep = ("iteration", "phase", *task.curves, "nll_val")
    rows = read_metrics(folder)
    return [{k: r[k] for k in keep if k in r} for r in rows]


REDO = "delete it and rerun the study to redo that run"
REDO_RUN = "delete the run's folder and rerun the study to redo it"


def evaluate_sweep(folder: Path, data: TextData, spec: StudySpec, seed: int, device: str,
                   resolved: Optional[Resolved] = None) -> List[Dict[str, Any]]:
    """The study's evaluation of a finished run's generator at every temperature, with the same
    sampling seed for every run of ``seed`` and every temperature.

    In-filling (``resolved`` needed): the run's agent, rebuilt from its checkpoint, fills the
    blanks of the test sequences at each temperature τ (:meth:`agents.infill.InfillAgent.evaluate_task`,
    whose ``nll_infill`` is the NLL of the true blanks at τ)."""
    sample_seed = 1_000_003 * (seed + 1)
    if task_of(spec).name in ("infill", "classes"):
        if resolved is None:
            raise ValueError("an in-filling or class-conditional sweep rebuilds the run's agent: pass its resolved config")
        header, state = read_checkpoint(folder / "checkpoint.pt")
        agent = build_agent(resolved, data, device)
        if not isinstance(agent, (InfillAgent, ConditionalAgent)):
            raise RunError(f"{folder}: agent {resolved.agent!r} has no task evaluation at a temperature")
        load_agent_state(agent, folder / "checkpoint.pt", header, state)
        return [{"temperature": float(tau), **agent.evaluate_task(spec.eval_samples, spec.eval_test_size, sample_seed,
                                                                  temperature=float(tau))[0]}
                for tau in spec.temperatures]
    from textgym.evaluate import evaluate_generator, load_generator

    try:
        gen, _ = load_generator(folder / "generator.pt", device=device)
    except SystemExit as exc:  # the evaluate CLI's error for a missing or corrupt file
        raise RunError(f"{str(exc.code).removeprefix('error: ')}; {REDO_RUN}") from None
    orders = () if isinstance(data, OracleData) else (2, 3, 4, 5)
    out = []
    for tau in spec.temperatures:
        ev = evaluate_generator(gen, data, n_samples=spec.eval_samples, seed=sample_seed, temperature=tau,
                                test_size=spec.eval_test_size, bleu_samples=spec.bleu_samples, bleu_orders=orders)
        out.append({"temperature": float(tau), **ev.metrics})
    return out


def read_json_file(path: Path, what: str, todo: str) -> Dict[str, Any]:
    """The JSON object in ``path`` (``what`` it should hold); StudyError naming the file and ``todo``
    when it is not JSON or not an object, instead of a traceback from further down."""
    try:
        blob = json.loads(path.read_text())
    except ValueError:
        raise StudyError(f"{path} is corrupt (not JSON); {todo}") from None
    if not isinstance(blob, dict):
        raise StudyError(f"{path} is corrupt (a JSON {type(blob).__name__}, not {what}); {todo}")
    return blob


def read_folder_spec(path: Path) -> Dict[str, Any]:
    """A study folder's ``spec.json`` as a dict (StudyError when it is corrupt)."""
    return read_json_file(path, "a study spec", "restore it from a copy of the spec the study was started with, "
                                                "or start the study in another folder")


def finished_record(cell: Cell, root: Path) -> Optional[Dict[str, Any]]:
    """The ``record.json`` of a finished run of ``cell``, or None when it has none (or one of an
    earlier record format, which is redone). StudyError when the file is corrupt (rerunning
    cannot fix that) or is the record of another run (reusing it would report that run's
    results under this cell's name)."""
    path = cell.folder(root) / "record.json"
    if not path.is_file():
        return None
    record = read_json_file(path, "a study record", REDO)
    if record.get("format") != RECORD_FORMAT:
        return None
    if (record.get("key"), record.get("seed")) != (cell.key, cell.seed):
        raise StudyError(f"{path} is the record of run s{record.get('seed')} {record.get('key')!r}, not of "
                         f"s{cell.seed} {cell.key!r}; {REDO}")
    return record


#: a run folder's warnings so far, kept for its record: a session that resumes a run does not see
#: the warnings of the training that earlier sessions did
WARNINGS_FILE = "study-warnings.json"


def run_cell(cell: Cell, spec: StudySpec, root: Path, device: str = "cpu", threads: int = 0) -> Dict[str, Any]:
    """Train (or resume, or reuse) one run and evaluate it; returns and writes its ``record.json``.

    The record's warnings are those of every session (each one is written to :data:`WARNINGS_FILE`
    as it is caught, once the folder holds the run's ``config.json``: an extra file in a folder
    without one would have the driver refuse it). Its ``seconds`` add the earlier sessions'
    training time (what the summary's ``train_seconds`` counts beyond this session's) to this one's."""
    if threads > 0:
        torch.set_num_threads(threads)
    folder = cell.folder(root)
    record_path = folder / "record.json"
    record = finished_record(cell, root)
    if record is not None:
        return record
    t0 = time.perf_counter()
    resolved = resolved_for(cell, spec, root)
    resume = (folder / "checkpoint.pt").is_file()
    caught = set(_read_warnings(folder) if resume else [])
    session_train = 0.0

    def count(agent: Any, stats: Any, seconds: float) -> None:
        nonlocal session_train
        session_train += seconds

    def keep(message: Any, *args: Any, **kwargs: Any) -> None:  # as warnings.showwarning
        caught.add(str(message))
        if (folder / "config.json").is_file():
            atomic_write_json(folder / WARNINGS_FILE, sorted(caught))

    with warnings.catch_warnings():  # kept in the record, not printed across the progress bar
        warnings.simplefilter("always")
        warnings.showwarning = keep  # restored when the block ends
        summary = train(resolved, folder, device=device, resume=resume, quiet=True, on_iteration=count)
        data = load_data(resolved.run)
        sweep = evaluate_sweep(folder, data, spec, cell.seed, device, resolved)
    earlier = max(0.0, summary["train_seconds"] - session_train)
    record = {
        "format": RECORD_FORMAT, "key": cell.key, "role": cell.role, "agent": cell.agent, "seed": cell.seed,
        "values": _thaw(cell.values), "control": cell.control, "mle_control": cell.mle_control,
        "iterations": summary["iterations"], "train_seconds": summary["train_seconds"],
        "summary_metrics": summary["metrics"], "curves": _curves(folder, task_of(spec)), "sweep": sweep,
        "seconds": round(time.perf_counter() - t0 + earlier, 2), "warnings": sorted(caught),
    }
    atomic_write_json(record_path, record)
    return record


def _read_warnings(folder: Path) -> List[str]:
    """The warnings that :data:`WARNINGS_FILE` holds ([] without one)."""
    path = folder / WARNINGS_FILE
    if not path.is_file():
        return []
    try:
        kept = json.loads(path.read_text())
    except ValueError:
        kept = None
    if not (isinstance(kept, list) and all(isinstance(w, str) for w in kept)):
        raise RunError(f"{path} is corrupt (not a JSON list of warnings); {REDO_RUN}")
    return kept


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C ignored while the block runs, in the main thread (the only one that may set signal
    handlers; elsewhere nothing changes). Workers spawned in the block ignore it from their first
    instruction on: an ignored signal stays ignored across exec, and Python keeps it so."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _start_worker(parent: Optional[int] = None) -> None:
    """A worker's start: Ctrl-C (sent to the whole process group) is the parent's to handle, and
    the parent's SIGTERM ends the worker with :class:`_Stopped`, so that its run's ``finally``
    blocks (the checkpoint writer, the run folder's lock) run and no traceback is printed.

    tqdm's lock becomes a thread lock: its default, a multiprocessing lock made at the first bar
    (even a disabled one), is a named semaphore that a stopped worker's ``os._exit`` leaves to the
    resource tracker, which then warned of leaked semaphores. A worker's runs draw no bars."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_quietly)
    _stop_with_parent(parent)


def _stop_with_parent(parent: Optional[int]) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the study's process (pid
    ``parent``) dies, killed or ended by a scheduler's time limit: an orphaned worker would
    otherwise go on training."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Stopped(SystemExit):
    """The parent's SIGTERM in a worker (and only that: other SystemExits are errors to report)."""


def _exit_quietly(signum: int, frame: Any) -> None:
    # one stop only: the pool's manager thread sends a second SIGTERM once another worker has
    # exited, which would cut this worker's finally blocks short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not _in_run:  # idle, waiting for a run: nothing to clean up. A SystemExit raised in the
        os._exit(128 + signum)  # pool's loop left the worker hanging in its exit after the study's death
    raise _Stopped(128 + signum)


_in_run = False  # whether this worker is inside _until_stopped (a run whose finally blocks must run)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued runs and end the workers (each unfinished run resumes from its last
    checkpoint)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() drops this table
    for proc in procs:
        proc.terminate()
    # then wait for them, so that the pool closes its queues (no leaked semaphores at exit)
    pool.shutdown(wait=True, cancel_futures=True)


def _until_stopped(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a worker. Once ``fn``'s ``finally`` blocks ran after the parent's
    SIGTERM, the process ends here (returning to the pool would let it take a queued run)."""
    global _in_run
    _in_run = True
    try:
        return fn(*args)
    except _Stopped as exc:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    finally:
        _in_run = False


def _worker(job: Tuple[Cell, Dict[str, Any], str, str, int]) -> Dict[str, Any]:
    cell, spec_dict, root, device, threads = job
    return _until_stopped(run_cell, cell, StudySpec.from_dict(spec_dict), Path(root), device, threads)


# ---------------------------------------------------------------------------- the study
def _check_folder_spec(out: Path, spec: StudySpec) -> None:
    """Write ``spec.json`` into ``out``, or StudyError when ``out`` holds another study or other
    files. Shards started together (a job array) may find another's spec being written: only its
    temporary file, ``shards/`` or nothing but ``spec.json`` count as a study's."""
    path = out / "spec.json"
    new = json.loads(json.dumps(spec.to_dict()))
    if not path.is_file() and out.exists():
        foreign = [p.name for p in out.iterdir() if p.name != "shards" and not p.name.startswith(".spec.json.tmp-")]
        if foreign and not path.is_file():  # a spec that landed meanwhile is compared below
            raise StudyError(f"{out} is not empty and holds no study; choose another --out")
    if path.is_file():
        old = read_folder_spec(path)
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StudyError(f"{out} holds a study with another spec (fields {diff} differ); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, spec.to_dict())


def run_study(spec: StudySpec, out: Path, *, workers: int = 1, shard: Optional[Tuple[int, int]] = None,
              device: str = "cpu", quiet: bool = False) -> Dict[str, Any]:
    """Run (or resume) a study, or one shard of it; writes the outputs when the study is whole.

    Returns ``{"runs": records, "seconds": wall time, "report": path or None}``.
    """
    from tqdm import tqdm

    try:
        usable_device(device)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    cells = expand(spec)
    data = load_data(RunConfig(**{k: v for k, v in _run_values(spec, spec.seeds[0]).items()
                                  if k in {f.name for f in fields(RunConfig)}}))
    for c in cells:  # each configuration built once, so that what an agent refuses stops the study now
        if c.seed == spec.seeds[0] and c.role in ("control", "cell"):
            try:  # on the study's device: some options exist on one kind of device only (d_compile: CUDA)
                build_agent(resolved_for(c, spec, Path(out)), data, device)
            except RunError as exc:
                raise StudyError(f"cell {c.key!r}: {exc}") from None
    del data  # loaded once to refuse missing or mismatched data before any training
    out = Path(out)
    _check_folder_spec(out, spec)
    root = out if shard is None else out / "shards" / f"{shard[0]}-of-{shard[1]}"
    todo = shard_cells(cells, shard)
    for c in todo:  # a corrupt or foreign record.json is refused before anything trains
        finished_record(c, root)
    started = time.perf_counter()
    threads = max(1, (torch.get_num_threads() if workers == 1 else (torch.get_num_threads() // workers)))
    records: List[Dict[str, Any]] = []
    failures: List[str] = []
    busy: List[str] = []  # runs that another process (another `study run` on this folder) is training
    stopped_seeds: set = set()  # seeds with a failed or busy run: their later runs start from it

    def outcome(c: Cell, result: Any) -> None:
        """Keep a run's record (``result()``), or note why there is none."""
        try:
            records.append(result())
            return
        except FolderInUse:
            busy.append(f"s{c.seed} {c.key}")
        except (FloatingPointError, RunError, RuntimeError, ValueError) as exc:
            failures.append(f"s{c.seed} {c.key}: {type(exc).__name__}: {exc}")
        stopped_seeds.add(c.seed)

    bar = tqdm(total=len(todo), desc=f"study {spec.name}", disable=quiet, dynamic_ncols=True, unit="run")
    try:
        for phase in (("start",), ("mle", "control", "cell")):
            jobs = [c for c in todo if c.role in phase and c.seed not in stopped_seeds]  # a failed start stops its seed
            if workers <= 1 or len(jobs) <= 1:
                main_threads = torch.get_num_threads()
                try:  # with workers, a run here gets a worker's threads: shards that split the runs otherwise agree
                    for c in jobs:
                        bar.set_postfix_str(f"s{c.seed} {c.key}")
                        outcome(c, lambda c=c: run_cell(c, spec, root, device, threads if workers > 1 else 0))
                        bar.update(1)
                finally:
                    torch.set_num_threads(main_threads)
                continue
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                     initializer=_start_worker, initargs=(os.getpid(),)) as pool:
                futures: Dict[Any, Cell] = {}
                try:
                    with _ctrl_c_ignored():  # the workers start here and inherit it
                        futures = {pool.submit(_worker, (c, spec.to_dict(), str(root), device, threads)): c for c in jobs}
                    for fut in as_completed(futures):
                        c = futures[fut]
                        outcome(c, fut.result)
                        bar.set_postfix_str(f"done s{c.seed} {c.key}")
                        bar.update(1)
                except KeyboardInterrupt:  # the workers ignore Ctrl-C: stop them here, quietly
                    _stop_workers(pool)
                    raise
    finally:
        bar.close()
    if failures or busy:
        parts = ([f"{len(failures)} run(s) failed; the others are kept, and rerunning the command retries these:\n  "
                  + "\n  ".join(failures)] if failures else []) \
            + ([f"{len(busy)} run(s) are being trained by another process (another `study run` on this folder), and "
                "were left to it (with the runs of their seeds that start from them); rerun this command once it has "
                "finished them:\n  " + "\n  ".join(busy)] if busy else [])
        raise StudyError("\n".join(parts))
    seconds = time.perf_counter() - started
    report = write_outputs(out, spec, collect(out, spec)) if shard is None else None
    return {"runs": records, "seconds": seconds, "report": report}


def collect(out: Path, spec: StudySpec, partial: bool = False) -> List[Dict[str, Any]]:
    """The records of every run of the study under ``out`` (its own cells and every shard's), each
    with its run's ``"folder"`` relative to ``out`` (the first copy of a run is the one kept, with a
    warning when another copy ended differently); StudyError naming the missing runs unless
    ``partial``."""
    found: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for path in sorted(out.glob("cells/s*/*/record.json")) + sorted(out.glob("shards/*/cells/s*/*/record.json")):
        rec = read_json_file(path, "a study record", REDO)
        if rec.get("format") != RECORD_FORMAT:
            raise StudyError(f"{path} is not a study record (format {rec.get('format')!r})")
        if not isinstance(rec.get("seed"), int) or not isinstance(rec.get("key"), str):
            raise StudyError(f"{path} is corrupt (no run key and seed); {REDO}")
        home = Cell(rec["key"], "", "", (), rec["seed"]).folder(path.parents[3])
        if path.parent != home:  # a record copied into another run's folder would stand for that run
            raise StudyError(f"{path} is the record of run s{rec['seed']} {rec['key']!r}, whose folder is {home}; "
                             "move it there or delete it")
        folder = path.parent.relative_to(out).as_posix()
        kept = found.setdefault((rec["seed"], rec["key"]), {**rec, "folder": folder})
        same = json.dumps(kept.get("summary_metrics"), sort_keys=True) == json.dumps(rec.get("summary_metrics"), sort_keys=True)
        if kept["folder"] != folder and not same:  # (as JSON text: a NaN metric equals itself there)
            # the same run trained twice (a shard's copy) to other weights: the cells of one copy's
            # shard started from it, and the report compares them with the kept one
            warnings.warn(f"two copies of run s{rec['seed']} {rec['key']!r} ended differently ({kept['folder']} and "
                          f"{folder}; shards run with other thread counts round differently): the report uses the "
                          f"first, also for the cells that started from the second", RuntimeWarning, stacklevel=2)
    wanted = [(c.seed, c.key) for c in expand(spec)]
    missing = [w for w in wanted if w not in found]
    if missing and not partial:
        names = ", ".join(f"s{s} {k}" for s, k in missing[:8]) + (" …" if len(missing) > 8 else "")
        raise StudyError(f"{len(missing)} of {len(wanted)} runs have no results yet ({names}); run the missing "
                         "shards, or merge with --partial")
    return [found[w] for w in wanted if w in found]
