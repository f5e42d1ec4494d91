"""Plots people would rather look at than read: the quality-diversity frontier and training
curves of run folders. PNG files through matplotlib's non-interactive Agg backend."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from textgym.metrics import FrontierPoint
from textgym.paths import atomic_write_bytes


def figure_format(path: Union[str, Path]) -> str:
    """The image format of ``path``'s suffix; ValueError naming the ones matplotlib writes."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in formats:
        raise ValueError(f"cannot write a plot to {str(path)!r}: its suffix names no image format matplotlib "
                         f"writes ({', '.join(sorted(formats))})")
    return fmt


def save_figure(fig: Any, path: Union[str, Path], dpi: int) -> Path:
    """Write ``fig`` to ``path`` atomically (an interruption leaves the old file or none) and close it."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=figure_format(path), dpi=dpi)
    finally:
        _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(points: Iterable[FrontierPoint], path: Union[str, Path], title: str = "Quality-diversity frontier") -> Path:
    """One curve per model through its temperatures: diversity (x) against quality (y), each point
    labelled with its temperature; each axis label says which way is better (lower-left for
    NLL-oracle vs NLL-test, upper-left for BLEU vs Self-BLEU). The points must measure one pair of
    metrics (ValueError otherwise: one pair of axes cannot show two)."""
    plt = _pyplot()
    points = list(points)
    if not points:
        raise ValueError("plot_frontier needs at least one point")
    pairs = sorted({(p.quality_name, p.diversity_name) for p in points})
    if len(pairs) > 1:
        raise ValueError(f"plot_frontier: the points measure different metrics {pairs}; plot each pair on its own")
    quality, diversity = pairs[0]
    up = quality.startswith("bleu")  # the convention of textgym.metrics: BLEU is the one higher-is-better axis
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name in dict.fromkeys(p.model for p in points):
        pts = sorted((p for p in points if p.model == name), key=lambda p: p.temperature)
        ax.plot([p.diversity for p in pts], [p.quality for p in pts], marker="o", label=name)
        for p in pts:
            ax.annotate(f"{p.temperature:g}", (p.diversity, p.quality), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{diversity.replace('_', '-')} (lower is better)")
    ax.set_ylabel(f"{quality.replace('_', '-')} ({'higher' if up else 'lower'} is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def read_metrics(run_dir: Union[str, Path]) -> List[Dict]:
    """The rows of a run folder's ``metrics.jsonl``. A last line that is not JSON (a write cut
    short by a kill) is skipped with a warning; a corrupt line elsewhere is a ValueError naming
    the file and the line."""
    f = Path(run_dir) / "metrics.jsonl"
    if not f.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {f} does not exist")
    lines = [(i + 1, line) for i, line in enumerate(f.read_text(errors="replace").splitlines()) if line.strip()]
    rows: List[Dict] = []
    for n, line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            if n == lines[-1][0]:
                warnings.warn(f"{f} line {n}, the last, is incomplete (a write cut short): skipped", stacklevel=2)
                break
            raise ValueError(f"{f} line {n} is corrupt (not JSON); repair or delete that line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{f} line {n} is corrupt (not a JSON object); repair or delete that line")
        rows.append(row)
    return rows


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_training_curves(run_dirs: Sequence[Union[str, Path]], path: Union[str, Path],
                         keys: Sequence[str] = ("nll_oracle", "nll_test", "bleu4", "self_bleu4", "g_loss", "d_loss"),
                         labels: Optional[Sequence[str]] = None) -> Path:
    """One panel per metric present in the runs' metrics, one line per run (named by ``labels``,
    else by the folder's name), against iteration."""
    plt = _pyplot()
    names = list(labels) if labels is not None else [Path(r).resolve().name for r in run_dirs]
    if labels is None and len(set(names)) != len(names):  # folders of one name in several places: as given
        names = [str(r) for r in run_dirs]
    if len(names) != len(run_dirs) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct label per run folder, got {names}")
    runs = {name: read_metrics(r) for name, r in zip(names, run_dirs, strict=True)}
    for name, rows in runs.items():
        bad = next((i for i, r in enumerate(rows, 1) if "iteration" not in r), None)
        if bad is not None:  # every row the driver writes has one: the x axis
            raise ValueError(f"metrics row {bad} of {name} has no 'iteration' (not a textgym metrics.jsonl?)")
    present = [k for k in keys if any(_number(row.get(k)) for rows in runs.values() for row in rows)]
    if not present:  # a metric logged only as null (a run without that figure) gets no empty panel
        raise ValueError(f"none of the metrics {list(keys)} has a value in {list(runs)}")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    handles: Dict[str, Any] = {}  # each run's colour is its own in every panel, also where another run has no line
    for ax, key in zip(axes[0], present, strict=True):
        for i, (name, rows) in enumerate(runs.items()):
            xs = [r["iteration"] for r in rows if _number(r.get(key))]
            ys = [r[key] for r in rows if _number(r.get(key))]
            if xs:
                (line,) = ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=name, color=f"C{i % 10}")
                handles.setdefault(name, line)
        ax.set_title(key.replace("_", "-"))
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0][0].legend(handles=[handles[n] for n in runs if n in handles], fontsize=8)  # every run, in order
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
