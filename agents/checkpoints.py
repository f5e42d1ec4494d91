"""A run folder's files: checkpoints (written atomically, checksummed, read back as data only),
atomic writes of the other files, and the checks that a checkpoint belongs to this run.

A checkpoint (``checkpoint.pt``) is a ``torch.save`` of ``{"header", "body"}``: the body is the
agent's state serialized by ``torch.save`` (as a byte tensor), the header says what it is:
``format`` (:data:`CHECKPOINT_FORMAT`), ``agent``, ``config`` (:func:`run_values`), ``data``
(:func:`data_fingerprint`), ``iteration``, ``metrics_rows``, ``device_type`` and the body's
``sha256``. :func:`read_checkpoint` refuses a missing, corrupt, foreign or unsafe file with a
:class:`RunError` that says which. The driver (:mod:`agents.driver`) writes one after every
iteration through :class:`CheckpointWriter`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None  # type: ignore[assignment]

import torch

from agents.base import Agent
from agents.config import Resolved, RunConfig
from textgym.data import Corpus, TextData
from textgym.paths import atomic_write_bytes
from textgym.safeload import UnsafeFileError, load_data_only

CHECKPOINT_FORMAT = "textgym-checkpoint-v1"


class RunError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


class FolderInUse(RunError):
    """The run folder is held by another process (:func:`claim_run_folder`)."""


#: the file of a run folder that a running process holds locked (see :func:`claim_run_folder`)
LOCK_NAME = ".lock"


@contextlib.contextmanager
def claim_run_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for one process while the block runs: RunError when another process holds it.

    Two runs started into one folder would interleave their metrics and checkpoints (each checks
    that the folder is free before either writes anything), so the folder is created and its
    ``.lock`` file locked (``flock``, released by the system when the process dies) before those
    checks. Leaving, a process that held the lock and started no run there (no ``config.json``)
    removes the lock file it created, and the folder when it created it and left it empty (a
    run refused before it wrote anything). Nothing is locked where the system cannot lock: no
    ``fcntl`` (Windows), a filesystem without ``flock``, a folder that cannot be written.
    """
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder} is a file, not a run folder; choose another --out")
    above = next((p for p in folder.parents if p.exists()), None)
    if above is not None and not above.is_dir():  # mkdir would say the file exists, or not a directory
        raise RunError(f"{folder} lies below a file ({above}), not a folder; choose another --out")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()  # atomic: exactly one of several starts creates it
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:  # no permission, a read-only or missing mount
        raise RunError(f"cannot create the run folder {folder}: {exc.strerror or exc}; choose another --out") from None
    fd: Optional[int] = None
    lock_created = held = False
    if fcntl is not None:
        try:
            fd, lock_created = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            with contextlib.suppress(OSError):
                fd = os.open(folder / LOCK_NAME, os.O_RDWR)
        except OSError:  # a folder that cannot be written: a run can only read it
            pass
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise FolderInUse(f"{folder} is in use by another run (process {holder}); wait for it to end or "
                                  "choose another --out") from None
            except OSError:  # a filesystem without flock (some network mounts): unlocked, as before
                pass
            if held:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        if held and lock_created and not (folder / "config.json").exists():
            (folder / LOCK_NAME).unlink(missing_ok=True)  # while still held: no one else can have locked it
        if fd is not None:
            os.close(fd)
        if created and not any(folder.iterdir()):
            with contextlib.suppress(OSError):  # another start may just have entered it
                folder.rmdir()


def run_values(resolved: Resolved) -> Dict[str, Any]:
    """The values that define a run (JSON-normalized): a checkpoint resumes only under the same."""
    return json.loads(json.dumps(resolved.to_json()["values"], sort_keys=True, default=str))


def checkpoint_parts(resolved: Resolved, agent: Agent, metrics_rows: int, data: TextData,
                     train_seconds: float = 0.0, warm: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], bytes]:
    """(header without its checksum, body): the agent's state serialized now (tensors copied off
    the device), the part of a checkpoint that must see this iteration's state. ``train_seconds``:
    the time spent in training iterations so far, over every session of the run; ``warm``: what
    the run's warm start took (:func:`agents.driver.warm_start`), for a resumed run's summary."""
    buf = io.BytesIO()
    torch.save({"agent": agent.state_dict()}, buf)
    header = {"format": CHECKPOINT_FORMAT, "agent": resolved.agent, "config": run_values(resolved),
              "data": data_fingerprint(data), "iteration": agent.iteration, "metrics_rows": metrics_rows,
              "device_type": agent.device.type, "train_seconds": round(train_seconds, 3), "warm_start": warm or {}}
    return header, buf.getvalue()


def _header_sha256(header: Dict[str, Any]) -> str:
    """SHA-256 of a header's values (its own checksum left out): the body's checksum does not
    cover the header, whose ``metrics_rows`` decides how much of metrics.jsonl a resume keeps."""
    values = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


_HEADER_KEYS = ("config", "iteration", "metrics_rows", "sha256")


def write_checkpoint(path: Path, header: Dict[str, Any], body: bytes) -> None:
    """Checksum, frame and write atomically a checkpoint of :func:`checkpoint_parts`."""
    header = {**header, "sha256": hashlib.sha256(body).hexdigest()}
    header["header_sha256"] = _header_sha256(header)
    out = io.BytesIO()
    # the body as a byte tensor: torch.save writes a tensor's storage as it is, while a bytes
    # object of this size goes through the pickler, several times slower
    torch.save({"header": header, "body": torch.frombuffer(bytearray(body), dtype=torch.uint8)}, out)
    atomic_write_bytes(path, out.getvalue())


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit) in a block of :func:`sigterm_stops`: the same
    orderly stop as Ctrl-C (the checkpoint in flight finished, a message on how to resume), with
    exit status 143 instead of 130."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the block runs, in the main thread (the only one
    that may set signal handlers; elsewhere nothing changes). Without it a kill ended the process
    where it stood: a study's workers lost their runs' last iteration, and its queues were left
    for the resource tracker to report. Each stop comes once: after the first SIGTERM or Ctrl-C
    (KeyboardInterrupt, where Ctrl-C has Python's own handler), both are ignored until the block
    ends, so that a second one cannot cut the cleanup short (a checkpoint in flight, the
    background writer: a second Ctrl-C aborted the process in the middle of it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ignore_both() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if signal.getsignal(signal.SIGINT) is interrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(signum: int, frame: Any) -> None:
        ignore_both()
        raise Terminated()

    def interrupt(signum: int, frame: Any) -> None:
        ignore_both()
        raise KeyboardInterrupt()

    before = signal.signal(signal.SIGTERM, stop)
    before_int = signal.getsignal(signal.SIGINT)
    if before_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        if before_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, before_int)


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

    def save(self, path: Path, resolved: Resolved, agent: Agent, metrics_rows: int, data: TextData,
             train_seconds: float = 0.0, warm: Optional[Dict[str, Any]] = None) -> None:
        self.close()
        header, body = checkpoint_parts(resolved, agent, metrics_rows, data, train_seconds, warm)
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
        if isinstance(outer, dict) and "format" in outer and "state_dict" in outer:  # what evaluate reads
            raise RunError(f"{path} is a generator file, not a checkpoint: give the run folder (it holds checkpoint.pt)")
        header, body = outer["header"], outer["body"]
        if isinstance(body, torch.Tensor) and body.dtype == torch.uint8 and body.dim() == 1:
            body = body.numpy().tobytes()  # checkpoints written before it was a tensor hold bytes
    except UnsafeFileError as exc:
        raise RunError(str(exc)) from None
    except RunError:
        raise
    except Exception as exc:  # truncated zip, wrong structure
        raise RunError(f"checkpoint {path} is corrupt or not a textgym checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise RunError(f"checkpoint {path} has format {fmt!r}, expected {CHECKPOINT_FORMAT!r}")
    if "header_sha256" in header and header["header_sha256"] != _header_sha256(header):  # earlier releases: none
        raise RunError(f"checkpoint {path} is corrupt (its header's checksum does not match)")
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise RunError(f"checkpoint {path} is corrupt (its header lacks {', '.join(missing)})")
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


def _same_value(key: str, a: Any, b: Any, header: Dict[str, Any]) -> bool:
    """Config values compare equal; the run a run warm started from is the same when its path is
    (spelled otherwise: ``runs/mle`` and ``runs/mle/``) or when the checkpoint now there is the one
    the warm start took (its checksum, recorded in ``header``): a study folder moved or copied
    elsewhere resumes its unfinished runs."""
    if key == "init_from" and isinstance(a, str) and isinstance(b, str):
        return a == b or Path(a).resolve() == Path(b).resolve() or _holds_warm_start(Path(b), header)
    return bool(a == b)


def _holds_warm_start(source: Path, header: Dict[str, Any]) -> bool:
    """Whether the run folder (or checkpoint) ``source`` holds the very checkpoint that the run of
    ``header`` warm started from (checkpoints of earlier releases recorded no checksum: no)."""
    taken = (header.get("warm_start") or {}).get("source_sha256")
    path = source / "checkpoint.pt" if source.is_dir() else source
    if not taken or not path.is_file():
        return False
    try:
        return read_checkpoint(path)[0].get("sha256") == taken
    except RunError:  # corrupt or foreign: not the source
        return False


def check_same_config(path: Path, header: Dict[str, Any], resolved: Resolved) -> None:
    """RunError naming every value (and the agent) in which the checkpoint's run differs from
    ``resolved``; a field added since the checkpoint was written is no difference while it keeps
    its default, or the value its run's budget caps the default to."""
    theirs, ours = header["config"], run_values(resolved)
    # a field added since the checkpoint was written resumes at the value nobody chose: the run had none
    new = {k for k in set(ours) - set(theirs) if resolved.sources.get(k) in ("default", "budget")}
    diff = sorted(k for k in (set(theirs) | set(ours)) - new if not _same_value(k, theirs.get(k), ours.get(k), header))
    if header.get("agent", resolved.agent) != resolved.agent:
        diff.insert(0, "agent")
        theirs, ours = {**theirs, "agent": header.get("agent")}, {**ours, "agent": resolved.agent}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {ours.get(k)!r}" for k in diff)
        raise RunError(f"checkpoint {path} belongs to another configuration ({detail}); that run continues under "
                       f"its own configuration: {path.parent / 'config.json'} (train.py --config)")


def data_fingerprint(data: TextData) -> Dict[str, Optional[str]]:
    """SHA-256 of the training tokens (as used, after ``train_size``), of the test tokens (which
    NLL-test and the discriminator's held-out reals read), of the vocabulary and BLEU's references (corpora):
    a checkpoint resumes only on the same data, and a run warm starts from another only on the
    same ids. Class-labelled data adds its labels and class names (a resume on relabelled
    sentences would train each class on another class's)."""
    vocab = getattr(data, "vocab", None)
    labels = classes = None
    if getattr(data, "train_labels", None) is not None:
        h = hashlib.sha256("\n".join(data.class_names).encode())  # type: ignore[attr-defined]
        classes = h.hexdigest()  # the names alone; the labels follow them into `labels`
        for t in (data.train_labels, data.test_labels):  # type: ignore[attr-defined]
            h.update(b"-" if t is None else t.cpu().numpy().tobytes())
        labels = h.hexdigest()
    references = None
    if isinstance(data, Corpus):  # BLEU reads the sentences as written, which the tokens do not fix (<unk>, cut ones)
        references = hashlib.sha256("\n".join(" ".join(r) for r in data.bleu_references()).encode()).hexdigest()
    return {
        "references_sha256": references,
        "train_sha256": hashlib.sha256(data.train.cpu().numpy().tobytes()).hexdigest(),
        "test_sha256": None if data.test is None else hashlib.sha256(data.test.cpu().numpy().tobytes()).hexdigest(),
        "vocab_sha256": None if vocab is None else hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest(),
        "labels_sha256": labels,
        "classes_sha256": classes,
    }


def check_same_data(path: Path, header: Dict[str, Any], data: TextData, run: RunConfig, what: str,
                    classes: bool = False) -> None:
    """RunError when ``data`` is not the data recorded in the checkpoint: its vocabulary, and for a
    resume also its training and test tokens (``what``: "resume" or "warm start"); for an agent
    that conditions on classes (``classes``) also its class names, and on a resume its labels. What a
    checkpoint did not record (an earlier release) is not checked."""
    theirs, ours = header.get("data"), data_fingerprint(data)
    if theirs is None:
        return  # a checkpoint of an earlier release: nothing recorded to compare
    # a warm start needs ids that mean the same words (and classes: a class's generator or input row is its
    # id's); labels mean nothing to an unconditional agent
    keys = ("vocab_sha256",) + (("classes_sha256",) if classes else ())
    if what != "warm start":
        keys += ("train_sha256", "test_sha256", "references_sha256") + (("labels_sha256",) if classes else ())
    names = {"vocab_sha256": "vocabulary", "classes_sha256": "class names", "train_sha256": "training data",
             "test_sha256": "test data", "labels_sha256": "class labels", "references_sha256": "BLEU references"}
    changed = [names[k] for k in keys if k in theirs and theirs[k] != ours.get(k)]
    if changed:
        why = ("token ids would mean other words" if "vocabulary" in changed
               else "class ids would mean other classes" if "class names" in changed
               else "the run's metrics would mix two data sets")
        singular = len(changed) == 1 and not changed[0].startswith("class")  # "class names" and "class labels" are plural
        raise RunError(f"{what} refused: the {' and the '.join(changed)} of {run.data} "
                       f"{'differs' if singular else 'differ'} from those recorded in "
                       f"{path}; {why}. Use the original data files, or start a new run")
