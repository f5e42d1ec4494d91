"""Helpers shared by the benchmark scripts: argument parsing, timing, the JSON line."""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, Optional

import torch

from textgym.allocator import keep_freed_memory

#: whether glibc keeps freed blocks for reuse in this run (textgym.allocator); every JSON line says
MALLOC: Dict[str, Optional[bool]] = {"kept": None}


class _Parser(argparse.ArgumentParser):
    """Parses the common flags, then applies the allocator settings as the training driver does
    (unless ``--default-malloc``)."""

    def parse_args(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        parsed = super().parse_args(*args, **kwargs)
        MALLOC["kept"] = False if parsed.default_malloc else keep_freed_memory()
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    p = _Parser(description=description)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions; the median is reported")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's allocator as it is (the training driver makes it keep freed blocks: textgym.allocator)")
    return p


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], Any], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns: Dict[str, Callable[[], Any]], device: torch.device, repeats: int = 3,
                warmup: bool = True, faults: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """Median wall time of each ``fns[name]()`` in seconds, timed in interleaved rounds.

    Each round runs every function once, in order, so that a slow spell of a shared machine
    hits all of them alike instead of one; ratios of these medians are what to report.
    ``faults``, if given, receives each function's median minor page faults per call (the
    process's, so only where the device is the CPU: a fresh page the allocator handed out).
    """
    if warmup:
        for fn in fns.values():
            fn()
        sync(device)
    times: Dict[str, list] = {name: [] for name in fns}
    faulted: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            faulted[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    if faults is not None:
        faults.update({name: statistics.median(f) for name, f in faulted.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def emit(result: Dict[str, Any]) -> None:
    """Print the benchmark's one JSON line (last line of stdout)."""
    print(json.dumps({**result, "malloc_kept": MALLOC["kept"]}, sort_keys=True), flush=True)


def run_or_reuse(name: str, budget: Any, explicit: Dict[str, Any], folder: Any, device: torch.device,
                 on_iteration: Optional[Callable[..., None]] = None) -> Dict[str, Any]:
    """The preset ``name`` under ``budget`` and ``explicit`` values, through the training driver into
    the run folder ``folder``: a finished run with the same config is reused, an interrupted one
    resumed. Returns the driver's summary."""
    from pathlib import Path

    import agents
    from agents.config import resolve
    from agents.driver import train

    folder = Path(folder)
    resolved = resolve(agents.preset(name), budget, explicit=explicit)
    return train(resolved, folder, device=device, resume=(folder / "checkpoint.pt").is_file(), quiet=True,
                 on_iteration=on_iteration)


def comparison_table(results: Dict[str, Dict[int, Dict[str, float]]], seeds: Any, metrics: Any,
                     comparisons: Any) -> tuple:
    """A markdown table of ``results[run][seed][metric]`` (mean ± sd over ``seeds``) with, for each
    ``(reference run, metric)`` of ``comparisons``, the paired 95% t-interval of run - reference
    (``*``: it excludes 0). Returns (markdown text, {run: {"mean": ..., "deltas": ...}})."""
    import statistics

    from textgym.stats import mean_sd, paired_interval

    head = [*metrics, *(f"Δ {m} vs {ref}" for ref, m in comparisons)]
    lines = ["| run | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    out: Dict[str, Any] = {}
    for name, by_seed in results.items():
        cols = {m: [by_seed[s][m] for s in seeds] for m in metrics}
        deltas = {f"{m}_vs_{ref}": None if name == ref or ref not in results else
                  paired_interval([by_seed[s][m] for s in seeds], [results[ref][s][m] for s in seeds])
                  for ref, m in comparisons}
        lines.append(f"| {name} | " + " | ".join(mean_sd(cols[m]) for m in metrics) + " | "
                     + " | ".join("–" if v is None else str(v) for v in deltas.values()) + " |")
        out[name] = {"mean": {m: statistics.fmean(v) for m, v in cols.items()},
                     "deltas": {k: None if v is None else v.as_dict() for k, v in deltas.items()}}
    return "\n".join(lines) + "\n", out
