"""A finished study's analysis (paired differences, frontiers) and outputs (results.csv,
results.jsonl, analysis.json, report.md, plots)."""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from textgym.metrics import FrontierComparison, FrontierPoint, compare_frontiers
from textgym.paths import atomic_write_bytes, atomic_write_json
from textgym.stats import Interval, mean_sd, paired_interval
from textgym.study.spec import Cell, StudyError, StudySpec, Task, start_key, task_of


# ---------------------------------------------------------------------------- analysis
def _at(record: Dict[str, Any], tau: float = 1.0) -> Dict[str, Any]:
    """The metrics of a run: the study's evaluation at ``tau`` plus the discriminator's last held-out
    figures (``d_heldout_*``)."""
    m = next((dict(r) for r in record["sweep"] if r["temperature"] == tau), {})
    m.pop("temperature", None)
    m.update({k: v for k, v in record["summary_metrics"].items() if k.startswith("d_heldout") and not isinstance(v, list)})
    return m


def _value(record: Dict[str, Any], metric: str) -> Optional[float]:
    """The run's ``metric`` (:func:`_at`), or None when it is missing or not finite (NaN, inf:
    left out of the statistics, and listed by :func:`analyze`)."""
    v = _at(record).get(metric)
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def frontier_axes(spec: StudySpec) -> Tuple[str, str, str]:
    """(quality, diversity, both in words) of the spec's frontiers: its task's, on its data."""
    task = task_of(spec)
    return task.frontiers[spec.data == task.oracle_data]


def frontier_points(record_or_sweep: Any, name: str, axes: Sequence[str]) -> List[FrontierPoint]:
    """The sweep's points on the frontier ``axes`` = (quality, diversity, ...) of :func:`frontier_axes`."""
    sweep = record_or_sweep["sweep"] if isinstance(record_or_sweep, dict) else record_or_sweep
    q, d = axes[0], axes[1]
    return [FrontierPoint(name, r["temperature"], r[q], r[d], q, d) for r in sweep]


def _compare(a: Any, a_name: str, b: Any, b_name: str, axes: Sequence[str]) -> Optional[FrontierComparison]:
    """:func:`compare_frontiers` of two records' (or sweeps') frontiers; None when either has no
    temperature with both axes finite (it has no frontier: NaN or inf metrics are left out)."""
    points = frontier_points(a, a_name, axes), frontier_points(b, b_name, axes)
    if not all(_has_front(p) for p in points):
        return None
    return compare_frontiers(*points)


def _has_front(points: Sequence[FrontierPoint]) -> bool:
    return any(math.isfinite(p.quality) and math.isfinite(p.diversity) for p in points)


def _mean_sweeps(a: List[Dict[str, Any]], b: List[Dict[str, Any]], axes: Sequence[str]
                 ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The sweeps of the records ``a`` and ``b`` (one per seed, paired by position) averaged per
    temperature, both sides at each temperature over the same seeds: those whose frontier ``axes``
    are finite there on both sides (no seed: NaN, the point leaves both frontiers). A seed that
    failed at one temperature would otherwise drop out of its own side's average only, and that
    side would look better for having averaged its other seeds. StudyError when the seeds'
    temperatures differ (seeds of one study sweep the spec's temperatures in its order)."""
    temperatures = [[row["temperature"] for row in r["sweep"]] for r in a + b]
    if any(t != temperatures[0] for t in temperatures):
        runs = ", ".join(f"{r.get('key')} s{r.get('seed')} {t}" for r, t in zip(a + b, temperatures, strict=True)
                         if t != temperatures[0])
        raise StudyError(f"cannot average the temperature sweeps of {a[0].get('key')} and {b[0].get('key')} over seeds: "
                         f"{runs} against {temperatures[0]}")

    def finite(row: Dict[str, Any]) -> bool:
        return all(isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in axes[:2])

    mean_a: List[Dict[str, Any]] = []
    mean_b: List[Dict[str, Any]] = []
    for i in range(len(temperatures[0])):
        rows_a, rows_b = [r["sweep"][i] for r in a], [r["sweep"][i] for r in b]
        kept = [j for j in range(len(a)) if finite(rows_a[j]) and finite(rows_b[j])]
        for rows, out in ((rows_a, mean_a), (rows_b, mean_b)):
            keys = set.intersection(*(set(r) for r in rows))
            out.append({k: statistics.fmean(rows[j][k] for j in kept) if kept else math.nan for k in keys})
    return mean_a, mean_b


def analyze(spec: StudySpec, records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Tables of the study: per key its metrics over seeds; per grid cell its paired differences
    from its control and from MLE, and its frontier against theirs."""
    task = task_of(spec)
    metrics, axes = task.metrics, frontier_axes(spec)
    by_key: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault(r["key"], {})[r["seed"]] = r
    rows: List[Dict[str, Any]] = []
    for key, runs in by_key.items():
        first = next(iter(runs.values()))
        stats = {}
        for m in metrics:
            xs = [v for r in runs.values() if (v := _value(r, m)) is not None]
            if xs:
                stats[m] = {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                            "values": xs}
        rows.append({"key": key, "role": first["role"], "agent": first["agent"], "values": first["values"],
                     "seeds": sorted(runs), "metrics": stats,
                     "seconds": statistics.fmean(r["seconds"] for r in runs.values())})
    comparisons: List[Dict[str, Any]] = []
    for key, runs in by_key.items():
        first = next(iter(runs.values()))
        if first["role"] != "cell":
            continue
        entry: Dict[str, Any] = {"key": key}
        for label, ref_key in (("control", first["control"]), ("mle", first["mle_control"]),
                               ("start", start_key(task, first["agent"]))):
            ref = by_key.get(ref_key, {})
            seeds = sorted(set(runs) & set(ref))
            diffs: Dict[str, Any] = {}
            for m in metrics:
                pairs = [(x, y) for s in seeds if (x := _value(runs[s], m)) is not None and (y := _value(ref[s], m)) is not None]
                ci = paired_interval([x for x, _ in pairs], [y for _, y in pairs]) if pairs else None
                if ci is not None:
                    diffs[m] = ci.as_dict()
            # per seed; None for a seed whose two sweeps have no frontier or share no diversity range
            per_seed = {s: _compare(runs[s], key, ref[s], ref_key, axes) for s in seeds}
            areas = [c.area if c is not None and c.overlap[1] > c.overlap[0] else None for c in per_seed.values()]
            fronted = [s for s in seeds if per_seed[s] is not None]  # the seed-averaged sweeps average these
            mean = None
            if fronted:
                mean_cell, mean_ref = _mean_sweeps([runs[s] for s in fronted], [ref[s] for s in fronted], axes)
                mean = _compare(mean_cell, key, mean_ref, ref_key, axes)
            shared = [a for a in areas if a is not None]
            area_ci = paired_interval(shared, [0.0] * len(shared))
            note = (f"{len(shared)} of {len(areas)} seeds share a range" if shared else "no common range") + "".join(
                f"; s{s} has no frontier (no finite point)" for s in seeds if per_seed[s] is None)
            entry[label] = {"key": ref_key, "seeds": seeds, "differences": diffs,
                            "frontier": None if mean is None else {
                                "verdict": mean.verdict, "area_of_means": mean.area, "areas": areas,
                                "area": None if area_ci is None else area_ci.as_dict(),
                                **({} if len(shared) == len(areas) else {"area_note": note})}}
        comparisons.append(entry)
    left_out = [f"s{r['seed']} {r['key']}: {m} = {_at(r)[m]}" for r in records for m in metrics
                if _at(r).get(m) is not None and _value(r, m) is None]
    left_out += [f"s{r['seed']} {r['key']}: its frontier (no temperature with finite {axes[0]} and {axes[1]})"
                 for r in records if not _has_front(frontier_points(r, r["key"], axes))]
    left_out += [f"s{r['seed']} {r['key']}: {a} = {row[a]} at temperature {row['temperature']} (a point of its frontier)"
                 for r in records if _has_front(frontier_points(r, r["key"], axes)) for row in r["sweep"]
                 for a in axes[:2] if isinstance(row.get(a), (int, float)) and not math.isfinite(row[a])
                 and not (row["temperature"] == 1.0 and a in metrics)]  # at 1.0 a metric is listed above
    return {"rows": rows, "comparisons": comparisons, **({"left_out": left_out} if left_out else {})}


# ---------------------------------------------------------------------------- outputs
def _fmt_ci(d: Optional[Dict[str, Any]]) -> str:
    if not d:
        return "–"
    return str(Interval(d["estimate"], d["low"], d["high"], d["df"], d["level"]))


def _fmt_area(frontier: Dict[str, Any]) -> str:
    """The frontier area's interval over the seeds whose sweeps share a diversity range, and how
    many do when not all of them."""
    note = frontier.get("area_note")
    if note and note.startswith("no common range"):
        return note
    return _fmt_ci(frontier.get("area")) + (f" ({note})" if note else "")


def _why_no_area(frontier: Dict[str, Any]) -> str:
    """Why a frontier comparison has no area interval, which needs two seeds with an area: its
    note on the seeds that have none, else there is one seed."""
    return frontier.get("area_note") or "one seed; an interval needs two"


def _better(metric: str, ci: Dict[str, Any], task: Task) -> Optional[bool]:
    """True/False when the interval says the cell is better/worse on ``metric``; None when unclear
    or when the metric has no better side."""
    if not ci or not (ci["low"] > 0 or ci["high"] < 0):
        return None
    lower = ci["high"] < 0
    if metric in task.lower_is_better:
        return lower
    return not lower if metric in task.higher_is_better else None


def best_epoch(record: Dict[str, Any]) -> Optional[int]:
    """The epoch of an early-stopped start whose generator was kept (the lowest ``nll_val``)."""
    vals = [c for c in record["curves"] if c.get("nll_val") is not None]
    return min(vals, key=lambda c: c["nll_val"])["iteration"] if vals else None


def report_markdown(spec: StudySpec, analysis: Dict[str, Any], records: List[Dict[str, Any]]) -> str:
    task = task_of(spec)
    present = [m for m in task.metrics if any(m in row["metrics"] for row in analysis["rows"])]
    compared = [m for m in present if not m.startswith("d_heldout")]
    lines = [f"# Study `{spec.name}`", ""]
    total = sum(r["seconds"] for r in records)
    lines += [f"Data `{spec.data}`, budget `{spec.budget}`, seeds {spec.seeds}, {len(analysis['rows'])} configurations, "
              f"{len(records)} runs, {total / 60:.1f} min of run time (training and the study's evaluation, summed over "
              f"runs). "
              + ("Every run of a seed warm starts from the MLE phase of its own agent, the same model with its "
                 "adversarial phases off"
                 if task.own_starts else
                 "Every run of a seed warm starts from one MLE checkpoint"
                 + ("" if task.start == "mle" else f" (`{task.start}`)") + " chosen by early stopping")
              + f" ({', '.join(f'{k}={v}' for k, v in spec.mle.items())}). Metrics are the study's evaluation at temperature "
              "1.0 (" + task.evaluation.format(
                  samples=spec.eval_samples, test=spec.eval_test_size or "all",
                  fills=spec.eval_samples if spec.eval_test_size is None else min(spec.eval_samples, spec.eval_test_size)),
              ""]
    starts = [r for r in records if r["role"] == "start"]
    if starts:
        if task.own_starts:
            lines += ["**The starts** (epochs run): " + "; ".join(
                f"seed {r['seed']} {r['agent']}: {r['iterations']}" for r in starts) + ".", ""]
        else:
            lines += ["**The shared starts** (best validation epoch / epochs run): " + "; ".join(
                f"seed {r['seed']}: {best_epoch(r)} / {r['iterations']}" for r in starts) + ".", ""]
    lines += ["## Every configuration", "", "| configuration | role | " + " | ".join(m.replace("_", "-") for m in present)
              + " |", "|---|---|" + "---:|" * len(present)]
    for row in analysis["rows"]:
        cells = [mean_sd(row["metrics"][m]["values"]) if m in row["metrics"] else "–" for m in present]
        lines.append(f"| {row['key']} | {row['role']} | " + " | ".join(cells) + " |")
    if analysis.get("left_out"):
        lines += ["", "Left out as not finite (the statistics use the other seeds; a seed-averaged frontier leaves a seed "
                  "out of both curves at a temperature where it is not finite): " + "; ".join(analysis["left_out"]) + "."]
    lines += ["", "## Differences (cell − reference: mean of the paired differences over seeds [95% t-interval]; "
              "* excludes 0)", ""]
    lines += ["| cell | against | " + " | ".join(m.replace("_", "-") for m in compared) + " | frontier | frontier area |",
              "|---|---|" + "---:|" * len(compared) + "---|---:|"]
    for comp in analysis["comparisons"]:
        for label in ("control", "mle", "start"):
            c = comp[label]
            fr = c["frontier"] or {}
            lines.append(f"| {comp['key']} | {c['key']} | " + " | ".join(_fmt_ci(c["differences"].get(m)) for m in compared)
                         + f" | {fr.get('verdict', '–')} | {_fmt_area(fr)} |")
    quality, _, axes = frontier_axes(spec)
    lines += ["", f"Frontier: the Pareto frontiers of the temperature sweeps {spec.temperatures} ({axes}), averaged "
              "over seeds: *dominates* (at least as good wherever the reference attains a diversity, and reaching as "
              "far), *dominated*, *crosses* or *equal*. "
              "Area: ∫ (reference − cell) over the common range with lower-is-better axes, per seed [95% interval] "
              "over the seeds whose two sweeps share a diversity range (a collapsed generator's single point shares "
              "none); positive means the cell is better.", ""]
    lines += ["## Reading", ""] + reading(analysis, quality, task)
    return "\n".join(lines) + "\n"


def reading(analysis: Dict[str, Any], q: str, task: Task) -> List[str]:
    """Sentences generated from the numbers: which cells beat their controls on the frontier's
    quality ``q``, and where none does."""
    comps = analysis["comparisons"]
    if comps and not any(comp[label]["differences"] for comp in comps for label in ("control", "mle", "start")):
        return ["- No comparison pairs two or more seeds, so there are no intervals and this reading calls no cell "
                "better, worse or unchanged; run the study with at least 3 seeds."]
    out: List[str] = []
    winners = []
    for comp in comps:
        ctrl = comp["control"]
        vs_ctrl = _better(q, ctrl["differences"].get(q, {}), task)
        fronts = {label: comp[label]["frontier"] or {} for label in ("control", "mle", "start")}
        names = (("control", "control"), ("mle", "MLE control"), ("start", "MLE start"))
        verdicts = ", ".join(f"{name} {fronts[label].get('verdict', '–')} "
                             f"(area {_fmt_area(fronts[label])})"
                             for label, name in names)
        desc = (f"`{comp['key']}`: {q.replace('_', '-')} vs its no-information control "
                f"{_fmt_ci(ctrl['differences'].get(q))}; frontier vs {verdicts}")
        beats_mle = all(fronts[label].get("verdict") == "dominates" and (fronts[label].get("area") or {}).get("low", 0) > 0
                        for label in ("mle", "start"))
        worse = [f"{m.replace('_', '-')} {_fmt_ci(d)}" for m, d in ctrl["differences"].items() if _better(m, d, task) is False]
        if vs_ctrl and worse:  # e.g. a generator collapsed onto a few likely sequences
            desc += f"; but worse than its control on {', '.join(worse)}"
        if vs_ctrl and beats_mle:
            winners.append(desc)
        elif vs_ctrl:
            out.append(f"- Beats its control but not MLE's frontier: {desc}.")
        elif vs_ctrl is False:
            out.append(f"- Worse than its own no-information control: {desc}.")
    if winners:
        out = [f"- **Beats its no-information control and MLE's frontier** (both the MLE control and the MLE "
               f"start): {w}." for w in winners] + out
    else:
        out.insert(0, "- **No cell beats both its no-information control and MLE's frontier** (the MLE control's and "
                      "the MLE start's) with intervals that exclude 0.")
    unclear = [c["key"] for c in analysis["comparisons"] if q in c["control"]["differences"]
               and _better(q, c["control"]["differences"][q], task) is None]
    if unclear:
        out.append(f"- Indistinguishable from their no-information control on {q.replace('_', '-')}: "
                   + ", ".join(f"`{k}`" for k in unclear) + ".")
    # held to the same standard as a cell that beats MLE: the seeds' areas' interval, not only the mean sweep's verdict
    mle_fronts = [(c["key"], c["mle"]["frontier"] or {}) for c in analysis["comparisons"]]
    dominated = [k for k, f in mle_fronts if f.get("verdict") == "dominated" and (f.get("area") or {}).get("high", 0) < 0]
    below = [k for k, f in mle_fronts if f.get("verdict") == "dominated" and f.get("area")
             and f["area"]["low"] <= 0 <= f["area"]["high"]]
    contradicted = [k for k, f in mle_fronts if f.get("verdict") == "dominated" and f.get("area")
                    and f["area"]["low"] > 0]  # the mean sweep's verdict and the per-seed areas disagree
    untested = [(k, f) for k, f in mle_fronts if f.get("verdict") == "dominated" and not f.get("area")]
    if dominated:
        out.append("- Frontier dominated by the MLE control's, with an area interval below 0 (the same updates spent "
                   "on MLE do better at every diversity): " + ", ".join(f"`{k}`" for k in dominated) + ".")
    if below:
        out.append("- Frontier below the MLE control's on the seed-averaged sweeps, but the seeds' area interval "
                   "includes 0: " + ", ".join(f"`{k}`" for k in below) + ".")
    if contradicted:
        out.append("- Frontier below the MLE control's on the seed-averaged sweeps, but the seeds' area interval is "
                   "above 0 (the per-seed frontiers say the cell is better): "
                   + ", ".join(f"`{k}`" for k in contradicted) + ".")
    if untested:
        out.append("- Frontier below the MLE control's on the seed-averaged sweeps, with no area interval to test it: "
                   + ", ".join(f"`{k}` ({_why_no_area(f)})" for k, f in untested) + ".")
    moved = [c["key"] for c in analysis["comparisons"] if c["start"]["differences"]
             and all(not d.get("excludes_zero") for d in c["start"]["differences"].values())]
    if moved:
        out.append("- Not distinguishable from the MLE start on any metric (no interval excludes 0; with this many "
                   "seeds that does not show that the generator stayed where it started): "
                   + ", ".join(f"`{k}`" for k in moved) + ".")
    alone = [c["key"] for c in analysis["comparisons"] if not c["control"]["differences"]]
    if alone:
        out.append("- No interval against the no-information control (fewer than two paired seeds), so nothing is "
                   "said of: " + ", ".join(f"`{k}`" for k in alone) + ".")
    return out


def write_outputs(out: Path, spec: StudySpec, records: List[Dict[str, Any]]) -> Path:
    """results.csv, results.jsonl, report.md and plots/ of the study folder ``out`` from the records
    that :func:`textgym.study.run.collect` returns; returns report.md."""
    analysis = analyze(spec, records)
    buf = io.StringIO()
    cols = ["key", "role", "agent", "seed", "values", "iterations", "train_seconds", "seconds", *task_of(spec).metrics]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({**{k: r[k] for k in cols[:4]}, "values": json.dumps(r["values"], sort_keys=True),
                    "iterations": r["iterations"], "train_seconds": r["train_seconds"], "seconds": r["seconds"], **_at(r)})
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    jsonl = "".join(json.dumps({k: v for k, v in r.items() if k != "format"}, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(out / "results.jsonl", jsonl.encode())
    atomic_write_json(out / "analysis.json", analysis)
    report = out / "report.md"
    atomic_write_bytes(report, report_markdown(spec, analysis, records).encode())
    write_plots(out, spec, records, analysis)
    return report


def write_plots(out: Path, spec: StudySpec, records: List[Dict[str, Any]], analysis: Dict[str, Any]) -> List[Path]:
    """plots/frontier-<cell>.png (the cell, its control, the MLE control and the MLE start, seed means)
    and plots/curves-<cell>.png (the task's curves per seed: NLL-oracle, NLL-test, entropy and held-out D
    accuracy; in-filling: NLL of the true blanks and NLL-oracle). The curves are those of the run
    folders that :func:`textgym.study.run.collect` took the ``records`` from (their ``"folder"``):
    a glob also found a run's second copy (a shard's and the study's own) and unfinished runs."""
    from textgym.plots import plot_frontier, plot_training_curves

    task, axes = task_of(spec), frontier_axes(spec)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    by_key: Dict[str, List[Dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault(r["key"], []).append(r)
    written = []
    for comp in analysis["comparisons"]:
        key = comp["key"]
        name = Cell(key, "cell", "", (), 0).folder_name
        points: List[FrontierPoint] = []
        for label, k in ((key, key), (f"control: {comp['control']['key']}", comp["control"]["key"]),
                         (f"MLE control: {comp['mle']['key']}", comp["mle"]["key"]),
                         ("MLE start", comp["start"]["key"])):
            if by_key.get(k):  # each curve the mean of its own seeds (the comparisons pair seeds across curves)
                points += frontier_points(_mean_sweeps(by_key[k], by_key[k], axes)[0], label, axes)
        written.append(plot_frontier(points, plots / f"frontier-{name}.png",
                                     title=f"{key} (mean of {len(by_key[key])} seeds)"))
        # a record read back from its record.json (not through collect) names no folder: the study's own
        folders = [out / r["folder"] if "folder" in r else Cell(r["key"], "", "", (), r["seed"]).folder(out)
                   for k in (key, comp["control"]["key"], comp["mle"]["key"]) for r in by_key.get(k, [])]
        written.append(plot_training_curves(
            folders, plots / f"curves-{name}.png", keys=task.curves,
            labels=[f"{f.name} ({f.parent.name})" for f in folders]))
    return written
