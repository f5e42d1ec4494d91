"""``python -m textgym.study``: run, merge, show, list."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from agents.checkpoints import RunError, Terminated, sigterm_stops
from agents.config import ConfigError
from textgym.study.report import write_outputs
from textgym.study.run import collect, read_folder_spec, run_study
from textgym.study.spec import BUILTIN, StudyError, StudySpec, expand, load_spec, parse_shard


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m textgym.study", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or resume) a study or one shard of it")
    r.add_argument("spec", help=f"a built-in spec ({', '.join(BUILTIN)}) or a .json / .toml file")
    r.add_argument("--out", default=None, help="the study folder (default runs/study-<name>-<budget>)")
    r.add_argument("--budget", default=None, help="override the spec's budget")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="override the spec's seeds")
    r.add_argument("--workers", type=int, default=1, help="runs in parallel processes (torch threads are shared out)")
    r.add_argument("--shard", default=None, help="i/n: run every n-th run, starting with the i-th (1-based)")
    r.add_argument("--device", default="cpu", help="torch device of every run")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    m = sub.add_parser("merge", help="join the shards of a study folder and write its outputs")
    m.add_argument("out", help="the study folder (holding spec.json)")
    m.add_argument("--partial", action="store_true", help="write the outputs from the runs that are there")
    s = sub.add_parser("show", help="list the runs of a spec without running anything")
    s.add_argument("spec")
    s.add_argument("--budget", default=None)
    sub.add_parser("list", help="the built-in specs")
    return p


def _with_overrides(spec: StudySpec, budget: Optional[str], seeds: Optional[Sequence[int]]) -> StudySpec:
    d = spec.to_dict()
    if budget is not None:
        d["budget"] = budget
    if seeds is not None:
        d["seeds"] = list(seeds)
    return StudySpec.from_dict(d)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            for name, d in BUILTIN.items():
                print(f"{name}: data {d.get('data', 'oracle')}, {len(expand(StudySpec.from_dict(d)))} runs")
            return 0
        if args.command == "show":
            spec = _with_overrides(load_spec(args.spec), args.budget, None)
            for c in expand(spec):
                print(f"s{c.seed}\t{c.role}\t{c.key}" + (f"\tcontrol: {c.control}" if c.control else ""))
            return 0
        if args.command == "merge":
            out = Path(args.out)
            if not (out / "spec.json").is_file():
                raise StudyError(f"{out} holds no study (no spec.json)")
            spec = StudySpec.from_dict(read_folder_spec(out / "spec.json"))
            report = write_outputs(out, spec, collect(out, spec, partial=args.partial))
            print(f"report: {report}")
            return 0
        spec = _with_overrides(load_spec(args.spec), args.budget, args.seeds)
        if args.workers < 1:
            raise StudyError(f"--workers must be >= 1, got {args.workers}")
        shard = parse_shard(args.shard) if args.shard else None
        out = Path(args.out or f"runs/study-{spec.name}-{spec.budget}")
        with sigterm_stops():
            result = run_study(spec, out, workers=args.workers, shard=shard, device=args.device, quiet=args.quiet)
    except (StudyError, ConfigError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (Terminated)
        print(f"\n{'terminated' if isinstance(exc, Terminated) else 'interrupted'}; finished runs are kept and each "
              "unfinished one has its last checkpoint: run the same command again to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if result["report"] is not None:
        print(Path(result["report"]).read_text())
        print(f"study folder: {out} ({result['seconds'] / 60:.1f} min)")
    else:
        print(f"shard {args.shard} done in {result['seconds'] / 60:.1f} min; when every shard is done: "
              f"python -m textgym.study merge {out}")
    return 0
