"""Helpers shared by the benchmark scripts: argument parsing, timing, the JSON line."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, Optional

import torch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions; the median is reported")
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
                warmup: bool = True) -> Dict[str, float]:
    """Median wall time of each ``fns[name]()`` in seconds, timed in interleaved rounds.

    Each round runs every function once, in order, so that a slow spell of a shared machine
    hits all of them alike instead of one; ratios of these medians are what to report.
    """
    if warmup:
        for fn in fns.values():
            fn()
        sync(device)
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def emit(result: Dict[str, Any]) -> None:
    """Print the benchmark's one JSON line (last line of stdout)."""
    print(json.dumps(result, sort_keys=True), flush=True)


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
