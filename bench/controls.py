"""Each adversarial agent beside the same run with a no-information discriminator, over seeds.

For every seed: one MLE run (the ``mle`` preset under the budget); then, for every agent, the
run with its own learned discriminator and the same run with ``--control`` (``constant``: logit
0 for everything; ``random``: i.i.d. N(0, 1) logits), both warm started from that MLE run (the
same generator an agent's own MLE phase would give: the streams are seeded by name). Agents
whose recipe has no MLE pretraining (ScratchGAN) start from scratch, as their recipe says.
Everything goes through the training driver, into run folders under ``--runs``.

Reported per agent and discriminator: NLL-oracle, NLL-test, the per-token entropy of samples
and the discriminator's held-out balanced accuracy (``d_heldout_acc``, 0.5 = no information),
as mean ± standard deviation over seeds, and the paired difference learned − control with a 95%
t-interval over seeds (distinguishable from noise when the interval excludes 0). The last
stdout line is one JSON object with every run's figures; a Markdown table goes to stderr and
``--table``.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from common import emit, log, parser, run_or_reuse

AGENTS = ["seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan"]
METRICS = ("nll_oracle", "nll_test", "entropy", "d_heldout_acc")
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def build_parser():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=AGENTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", default="default", help="an agents.config budget (default 'default')")
    p.add_argument("--control", default="constant", choices=["constant", "random"], help="the no-information discriminator")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--runs", default=None, help="folder of the run folders (default runs/bench/controls-<budget>)")
    p.add_argument("--table", default=None, help="also write the Markdown table here")
    return p


def run(name: str, budget: str, explicit: Dict[str, Any], folder: Path, device: torch.device) -> Dict[str, Any]:
    t0 = time.perf_counter()
    summary = run_or_reuse(name, budget, explicit, folder, device)
    m = summary["metrics"]
    log(f"[{folder.parent.name}/{folder.name}] " + " ".join(f"{k}={m[k]:.3f}" for k in METRICS if k in m)
        + f" ({time.perf_counter() - t0:.0f} s)")
    return {k: m.get(k) for k in METRICS} | {"seconds": summary["train_seconds"]}


def mean_sd(xs: List[float]) -> str:
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def paired(a: List[float], b: List[float]) -> Optional[Dict[str, float]]:
    """Mean of a - b over seeds with its 95% t-interval."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    if len(d) < 2:
        return None
    m, s = statistics.mean(d), statistics.stdev(d)
    half = T975.get(len(d) - 1, 1.96) * s / math.sqrt(len(d))
    return {"mean": m, "low": m - half, "high": m + half}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    budget = "smoke" if args.quick else args.budget
    seeds = args.seeds[:2] if args.quick else args.seeds
    runs = Path(args.runs or f"runs/bench/controls-{budget}")
    started = time.perf_counter()
    results: Dict[str, Dict[str, Dict[int, Dict[str, Any]]]] = {}
    for seed in seeds:
        base = {"seed": seed, "eval_every": 10**9}
        mle = runs / f"s{seed}" / "mle"
        run("mle", budget, base, mle, device)
        for name in args.agents:
            import agents

            warm = dict(base) if agents.preset(name).values.get("mle_epochs") == 0 else {**base, "init_from": str(mle)}
            for label, extra in (("learned", {}), (args.control, {"discriminator": args.control})):
                res = run(name, budget, {**warm, **extra}, runs / f"s{seed}" / f"{name}-{label}", device)
                results.setdefault(name, {}).setdefault(label, {})[seed] = res

    rows = ["| agent | discriminator | NLL-oracle | NLL-test | entropy | held-out D acc |", "|---|---|---:|---:|---:|---:|"]
    diffs: Dict[str, Dict[str, Any]] = {}
    for name, by_label in results.items():
        for label, by_seed in by_label.items():
            cells = [mean_sd([r[k] for r in by_seed.values() if r.get(k) is not None]) for k in METRICS]
            rows.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
        learned, control = by_label.get("learned", {}), by_label.get(args.control, {})
        common = sorted(set(learned) & set(control))
        diffs[name] = {}
        cells = []
        for k in METRICS:
            a = [learned[s][k] for s in common if learned[s].get(k) is not None and control[s].get(k) is not None]
            b = [control[s][k] for s in common if learned[s].get(k) is not None and control[s].get(k) is not None]
            ci = paired(a, b)
            diffs[name][k] = ci
            cells.append("–" if ci is None else f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"
                         + (" *" if ci["low"] > 0 or ci["high"] < 0 else ""))
        rows.append(f"| {name} | learned − {args.control} | " + " | ".join(cells) + " |")
    header = (f"Agents beside a no-information discriminator ({args.control}); budget {budget}; seeds {seeds}; "
              f"mean ± sd over seeds; differences: mean [95% t-interval] over seeds, * = the interval excludes 0.\n\n")
    md = header + "\n".join(rows) + "\n"
    log("\n" + md)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(md)
    emit({"benchmark": "controls", "device": str(device), "budget": budget, "seeds": seeds, "control": args.control,
          "results": results, "differences": diffs, "ratio": None, "total_seconds": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
