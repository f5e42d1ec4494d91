#!/usr/bin/env python
"""Train a text generator: pick an agent, a data set, a reward; train; evaluate.

Examples:
    python train.py --agent seqgan --budget default                 # the synthetic oracle benchmark
    python train.py --agent seqgan --help                           # every field of seqgan, with its default
    python train.py --agent mle --data corpus.txt --test-data test.txt --budget smoke
    python train.py --agent seqgan --init-from runs/mle --discriminator oracle
    python train.py --config runs/a/config.json --out runs/a --resume  # continue runs/a from its checkpoint
    python train.py --config runs/a/config.json --out runs/b        # rerun a run from its config.json

Each agent has one typed config (``agents.config``); every field is a flag (``--gen-lr 0.001``,
or ``--set gen_lr=0.001``). A preset gives the paper's recipe; ``--budget`` caps the size
fields (epochs, steps, samples) and never changes a recipe field; an explicit flag always
wins. Unknown or misspelled options and bad values are refused before anything runs.

The run folder (``--out``) holds ``config.json`` (every resolved value and where it came
from), ``metrics.jsonl``/``metrics.csv``, ``tb/``, ``checkpoint.pt``, ``samples/``,
``generator.pt`` and ``summary.json`` (see ``agents.driver``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

DEFAULT_AGENT = "seqgan"


def _pre_parse(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--agent", default=None)
    p.add_argument("--budget", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--task", default=None)
    ns, _ = p.parse_known_args(argv)
    return ns


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(agent: str, budget: str) -> argparse.ArgumentParser:
    """The parser of ``agent``'s flags: the driver's options, then one flag per config field."""
    import agents
    from agents.config import BUDGETS, RunConfig, describe, resolve

    preset = agents.preset(agent)
    shown = resolve(preset, budget if budget in BUDGETS else "paper")
    p = argparse.ArgumentParser(
        prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        epilog=f"agents: {', '.join(agents.available())} (train.py --agent NAME --help lists NAME's fields)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--agent", default=DEFAULT_AGENT,
                   help=f"the algorithm (default {DEFAULT_AGENT}): {', '.join(agents.available())}")
    g.add_argument("--budget", default="default", help=f"caps on size fields: {', '.join(sorted(BUDGETS))} (default 'default'; "
                   "'paper' caps nothing)")
    g.add_argument("--task", default=None, help=f"another task than free generation: {', '.join(agents.TASKS)} "
                   "(--agent maskgan --task infill is the maskgan-infill agent)")
    g.add_argument("--config", default=None, help="a run's config.json: its values, then this command's flags over them")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set any field (same as --key value)")
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    g.add_argument("--out", default=None, help="run folder (default runs/<agent>-<data>-s<seed>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--stop-after", type=int, default=None, help="stop after this many iterations (resumable later)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    values = shown.values()
    for title, cls in (("data, evaluation and warm start", RunConfig), (f"{agent} ({preset.paper})", preset.config_class)):
        grp = p.add_argument_group(title)
        for name, kind, tname, _default, help_, paper in describe(cls):
            now = values[name]
            origin = {"preset": f"the {agent} preset", "default": f"the default [{paper}]" if paper else "the default",
                      "budget": f"budget {budget!r}"}.get(shown.sources[name], shown.sources[name])
            grp.add_argument(_flag(name), dest=name, default=argparse.SUPPRESS, metavar=tname.upper().replace(" ", "_")
                             if tname in ("int", "float", "str") else "VALUE",
                             help=f"{help_} ({kind}, {tname}; {now!r} from {origin})".replace("%", "%%"))
    return p


def parse(argv: List[str]) -> Tuple[Any, argparse.Namespace]:
    """(resolved config, control options) from the command line; ConfigError / SystemExit on bad input."""
    import agents
    from agents.config import (
        DEPRECATED_KEYS,
        ConfigError,
        RunConfig,
        all_field_names,
        field_types,
        from_json,
        parse_text,
        resolve,
        suggest,
        translate_deprecated,
    )

    pre = _pre_parse(argv)
    file_values: Dict[str, Any] = {}
    file_sources: Dict[str, Any] = {}
    agent, budget = pre.agent, pre.budget
    if pre.config:
        path = Path(pre.config)
        try:
            blob = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            stopped = path.name == "config.json" and path.parent.is_dir() and not (path.parent / "checkpoint.pt").exists()
            raise ConfigError(f"--config {path}: cannot read it ({exc})" + (
                f"; if {path.parent} is a run stopped before its first checkpoint, start it again with its own flags"
                if stopped else "")) from None
        file_agent, file_budget, file_values = from_json(blob, str(path))
        recorded = isinstance(blob.get("sources"), dict)
        file_sources = blob["sources"] if recorded else {}
        if agent is not None and agent != file_agent:
            raise ConfigError(f"--agent {agent} differs from the agent {file_agent!r} of {path}")
        if budget is not None and budget != file_budget:
            # another budget: the file's own choices stay (its flags and config values), everything
            # else is resolved afresh under that budget (caps, defaults, scaled periods)
            if not recorded:
                raise ConfigError(f"--budget {budget} with --config {path}: the file records no \"sources\", so its "
                                  f"choices cannot be told from the values its budget {file_budget!r} set; drop --budget")
            file_values = {k: v for k, v in file_values.items() if file_sources.get(k) in ("config", "flag")}
        agent, budget = file_agent, budget or file_budget
    agent = agent or DEFAULT_AGENT
    budget = budget or "default"
    if pre.task is not None:
        if pre.task not in agents.TASKS:
            raise ConfigError(f"unknown task {pre.task!r}; valid: {', '.join(agents.TASKS)}")
        by_agent = agents.TASKS[pre.task]
        if agent in by_agent:
            agent = by_agent[agent]
        elif agent not in by_agent.values():
            raise ConfigError(f"agent {agent!r} has no {pre.task!r} task; agents with one: {', '.join(by_agent)}")
    agents.preset(agent)  # ValueError naming the valid agents
    parser = build_parser(agent, budget)
    args, extra = parser.parse_known_args(argv)
    if extra:
        options = [a.option_strings[0] for a in parser._actions if a.option_strings]
        bad = next((e for e in extra if e.startswith("-")), extra[0])
        key = bad.split("=", 1)[0]
        raise ConfigError(f"unknown option {key!r} for agent {agent!r}{suggest(key, options)}; "
                          f"train.py --agent {agent} --help lists them")
    preset = agents.preset(agent)
    hints = {**field_types(RunConfig), **field_types(preset.config_class)}
    valid = all_field_names(preset.config_class)
    explicit: Dict[str, Any] = {}
    texts = [(k, v) for k, v in vars(args).items() if k in valid]
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        if k in DEPRECATED_KEYS:
            print(f"warning: --set {k}=... is deprecated; use --{DEPRECATED_KEYS[k].replace('_', '-')}", file=sys.stderr)
            for k2, v2 in translate_deprecated({k: v.strip()}).items():
                if k2 not in valid:
                    raise ConfigError(f"--set {k}={v.strip()}: agent {agent!r} has no {k2} to set")
                texts.append((k2, v2))
            continue
        if k not in valid:
            raise ConfigError(f"unknown config key {k!r} for agent {agent!r}{suggest(k, valid)}")
        texts.append((k, v))
    for k, text in texts:
        if k in explicit:  # a flag and --set (or two --set) for one key: which wins would be a guess
            raise ConfigError(f"{k} is given twice on the command line (as --{k.replace('_', '-')} or --set {k}=...); "
                              "give it once")
        explicit[k] = parse_text(k, hints[k], text)
    resolved = resolve(preset, budget, file_values, explicit)
    for k in file_values:  # a value the file's run did not choose keeps its origin, so that a later
        # --budget still resolves it afresh (labelled "config", it would pass as chosen for good)
        origin = file_sources.get(k)
        if resolved.sources.get(k) == "config" and isinstance(origin, str) and origin not in ("config", "flag"):
            resolved.sources[k] = origin
    return resolved, args


def resume_command(folder: Path, device: str) -> str:
    """The command that continues the run in ``folder`` (its own config, the same device)."""
    return (f"python train.py --config {folder / 'config.json'} --out {folder} --resume"
            + (f" --device {device}" if device != "cpu" else ""))


def discriminator_notice(metrics: Dict[str, Any]) -> Optional[str]:
    """The notice a finished run prints when its discriminator's final held-out figures say its
    rewards carry little information, or None."""
    from agents.adversarial import INFORMATIVE_ACC

    acc, hard = metrics.get("d_heldout_acc"), metrics.get("d_heldout_acc_hard")
    if isinstance(acc, float) and acc < INFORMATIVE_ACC:
        return (f"notice: the discriminator is weak: its held-out accuracy ended at {acc:.3f} (chance 0.5, informative "
                f">= {INFORMATIVE_ACC}), so its rewards carry little information; compare with the same run under "
                "--discriminator constant before reading gains into it (bench/results/discriminator_info.md)")
    if isinstance(acc, float) and isinstance(hard, float) and hard < INFORMATIVE_ACC:  # catgan: soft rows only
        return (f"notice: the discriminator tells the generator's soft rows from real text (held-out accuracy "
                f"{acc:.3f}) but not the generated text itself (d_heldout_acc_hard {hard:.3f}, chance 0.5): its "
                "gradient tells the generator how to look one-hot rather than how to write like the data")
    return None


def main(argv: Optional[List[str]] = None) -> int:
    from agents.checkpoints import RunError, Terminated, sigterm_stops
    from agents.config import ConfigError
    from agents.driver import train

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        resolved, args = parse(argv)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = resolved.run
    if args.stop_after is not None and args.stop_after < 1:
        print(f"error: --stop-after must be >= 1 (iterations to run before stopping), got {args.stop_after}", file=sys.stderr)
        return 2
    folder = Path(args.out or f"runs/{resolved.agent}-{Path(str(run.data)).stem}-s{run.seed}")
    try:
        with sigterm_stops():
            summary = train(resolved, folder, device=args.device, resume=args.resume, stop_after=args.stop_after,
                            quiet=args.quiet)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        ckpt = folder / "checkpoint.pt"
        kept = f"the last good checkpoint is {ckpt}" if ckpt.is_file() else "no checkpoint was written before it"
        print(f"error: training diverged: {exc}; {kept}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the driver finished (or never began) the checkpoint in flight
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if (folder / "checkpoint.pt").is_file():
            print(f"\n{what}; the last checkpoint is kept: continue with: {resume_command(folder, args.device)}",
                  file=sys.stderr)
        else:
            print(f"\n{what} before the first checkpoint; run the same command again to start over", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if summary.get("already_finished"):
        print(f"{folder} holds a finished run ({summary['iterations']} iterations); nothing to do")
    elif not summary["finished"]:
        print(f"stopped after iteration {summary['iterations']}/{summary['total_iterations']}; "
              f"continue with: {resume_command(folder, args.device)}")
        return 0
    print(json.dumps({"agent": resolved.agent, "iterations": summary["iterations"], **summary["metrics"]}))
    notice = discriminator_notice(summary["metrics"])
    if notice:
        print(notice)
    print(f"run folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
