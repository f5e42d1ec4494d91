"""In-filling on the oracle: MaskGAN against its controls, over seeds (a results table, not a timing).

Per seed, through the training driver (``agents.driver.train``) at ``--budget``:

- ``start``: ``mle-infill`` with MaskGAN's batch (128): the MLE phase every other run starts from;
- ``mle``: the MLE control, ``start`` plus as many MLE updates as MaskGAN's generator updates;
- ``maskgan``: ``maskgan-infill`` from ``start`` with its trained seq2seq discriminator;
- ``constant``: the same with the no-information discriminator (r_t = log 1/2);
- ``oracle``: the same with the oracle's log-likelihood as the reward (the perfect discriminator).

Metrics (:meth:`agents.infill.InfillAgent.evaluate_task`): ``nll_infill`` (NLL per blank of the
true tokens, lower is better), ``nll_oracle`` (oracle NLL per token of test sequences with the
blanks filled by sampling, lower is better), ``unique2..4`` (share of distinct n-grams touching
a fill). Each run is compared with ``mle`` and ``constant`` by paired 95% t-intervals over seeds
(``*``: the interval excludes 0). Prints one JSON line (``ratio`` null: no baseline timing);
``--table`` writes the markdown table. ``--quick``: two seeds of tiny runs.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import agents
from common import comparison_table, emit, log, parser, run_or_reuse

METRICS = ("nll_infill", "nll_oracle", "unique2", "unique4")


def runs_for(budget: str, quick: bool) -> Dict[str, Dict[str, Any]]:
    """name -> (agent, explicit values) of one seed's runs (init_from is filled in later)."""
    caps = agents.config.BUDGETS[budget]
    adv = int(caps.get("adv_steps") or 200) if not quick else 2
    base = {"batch_size": 128}
    small = {"train_size": 512, "eval_samples": 128, "eval_test_size": 256} if quick else {}
    return {
        "start": {"agent": "mle-infill", "values": {**base, **small, **({"mle_epochs": 1} if quick else {})}},
        "mle": {"agent": "mle-infill", "values": {**base, **small, "mle_epochs": 1, "iteration_updates": adv}},
        **{name: {"agent": "maskgan-infill", "values": {**base, **small, "discriminator": d,
                                                        **({"adv_steps": 2, "d_pretrain_steps": 1} if quick else {})}}
           for name, d in (("maskgan", "seq2seq"), ("constant", "constant"), ("oracle", "oracle"))},
    }


def main(argv: Optional[List[str]] = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", default="default")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0 1)")
    p.add_argument("--out", default=None, help="run folders (default runs/bench-infill[-quick]; rerunning resumes "
                                               "finished runs)")
    p.add_argument("--table", default=None, help="write the markdown table here")
    args = p.parse_args(argv)
    out = Path(args.out or f"runs/bench-infill{'-quick' if args.quick else ''}")  # a quick run's folders are its own
    results: Dict[str, Dict[int, Dict[str, float]]] = {}
    args.seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    for seed in args.seeds:
        plan = runs_for(args.budget, args.quick)
        for name, spec in plan.items():
            values = {**spec["values"], "seed": seed}
            if name != "start":
                values["init_from"] = str(out / f"start-s{seed}")
            summary = run_or_reuse(spec["agent"], args.budget, values, out / f"{name}-s{seed}", args.device)
            results.setdefault(name, {})[seed] = summary["metrics"]
            log(f"seed {seed} {name}: " + ", ".join(f"{k} {summary['metrics'].get(k, float('nan')):.4f}" for k in METRICS))
    seeds = args.seeds
    text, summary_out = comparison_table(results, seeds, METRICS,
                                         (("mle", "nll_oracle"), ("constant", "nll_oracle"), ("mle", "nll_infill")))
    log(text)
    if args.table:
        Path(args.table).write_text(text)
    emit({"benchmark": "infill", "quick": bool(args.quick), "budget": args.budget, "seeds": seeds, "device": args.device,
          "runs": summary_out, "ratio": None, "ratio_note": "a results table, not a timing: see runs"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
