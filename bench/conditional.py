"""Class-conditional generation on the two-oracle benchmark: SentiGAN and CatGAN against their
MLE starts and no-information controls, over seeds (a results table, not a timing).

Per seed, through the training driver at ``--budget`` on ``data="oracle-classes"`` (k = 2
oracle LSTMs, NLL-oracle of each sample under its own class's oracle):

- ``sentigan``: k generators against the trained multi-class discriminator;
- ``sentigan-constant``: the same with the no-information discriminator (every class
  probability 1/(k+1));
- ``catgan``: one conditional generator with the relativistic objective and evolutionary
  selection. Its no-information control is not run: a constant discriminator gives the
  relativistic losses zero gradient, so that control is its MLE start;
- ``sentigan-start``, ``catgan-start``: the evaluation of each run at the end of its MLE phase
  (iteration ``mle_epochs``, read from its ``metrics.jsonl``).

Each run is compared with its start and with the constant control by paired 95% t-intervals
over seeds (``*``: the interval excludes 0). Prints one JSON line; ``--table`` writes the table.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from common import comparison_table, emit, log, parser, run_or_reuse

METRICS = ("nll_oracle", "nll_oracle_c0", "nll_oracle_c1", "nll_test")


def start_metrics(folder: Path, mle_epochs: int) -> Dict[str, float]:
    """The evaluation row at the end of the MLE phase."""
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("iteration") == mle_epochs and "nll_oracle" in row:
            return row
    raise SystemExit(f"{folder}: no evaluation at iteration {mle_epochs} (eval_every must divide mle_epochs)")


def main(argv: Optional[List[str]] = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", default="default")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/bench-conditional", help="run folders (rerunning resumes finished runs)")
    p.add_argument("--table", default=None, help="write the markdown table here")
    args = p.parse_args(argv)
    out = Path(args.out)
    budget = "smoke" if args.quick else args.budget
    plan = {"sentigan": ("sentigan", {}), "sentigan-constant": ("sentigan", {"discriminator": "constant"}),
            "catgan": ("catgan", {})}
    results: Dict[str, Dict[int, Dict[str, float]]] = {}
    for seed in args.seeds:
        for name, (agent, values) in plan.items():
            folder = out / f"{name}-s{seed}"
            summary = run_or_reuse(agent, budget, {**values, "data": "oracle-classes", "seed": seed},
                                   folder, args.device)
            results.setdefault(name, {})[seed] = summary["metrics"]
            if name != "sentigan-constant":
                results.setdefault(f"{name}-start", {})[seed] = start_metrics(folder, summary["config"]["mle_epochs"])
            log(f"seed {seed} {name}: " + ", ".join(f"{k} {summary['metrics'][k]:.4f}" for k in METRICS))
    text, table = comparison_table(results, args.seeds, METRICS,
                                   (("sentigan-start", "nll_oracle"), ("catgan-start", "nll_oracle"),
                                    ("sentigan-constant", "nll_oracle"), ("sentigan-start", "nll_test")))
    log(text)
    if args.table:
        Path(args.table).write_text(text)
    emit({"benchmark": "conditional", "budget": budget, "seeds": args.seeds, "device": args.device, "runs": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
