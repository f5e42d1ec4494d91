"""The reward-shaping study: which reward trains the better generator, with controls and seeds.

    python -m textgym.study run oracle-shaping --budget default --workers 2 --out runs/study
    python -m textgym.study run my-spec.json --shard 2/8 --out /shared/study   # one part of a grid
    python -m textgym.study merge /shared/study                                # join the parts
    python -m textgym.study show oracle-shaping                                # the cells, nothing run
    python -m textgym.study list                                               # built-in specs

A spec (a built-in name, or a JSON or TOML file with the fields of :class:`StudySpec`) names a
grid: each entry of ``grid`` maps config fields (``agent``, ``reward``, ``transform``,
``discriminator``, any other field of the agent's config) to lists of values, and its cells are
their product. Every cell runs once per seed through the one training driver
(:func:`agents.driver.train`), into a run folder of the usual format.

Controls, added to every study:

1. **The shared start.** For each seed, one ``mle`` run with early stopping on a validation split
   (``spec.mle``: the last ``val_size`` training sequences, ``patience`` epochs); every other
   run of that seed warm starts from its best generator. ScratchGAN's recipe trains from scratch;
   here it starts from the same checkpoint as every cell, so that the study compares rewards,
   not initializations.
2. **The MLE control.** For each seed and each number G of generator updates that an adversarial
   cell makes (``adv_steps × g_steps``), MLE continued from the start for G updates, with the
   start's optimizer policy (Adam, ``mle_lr``, ``batch_size`` of the ``mle`` preset).
3. **The no-information control** of every adversarial cell: the same cell with
   ``discriminator = spec.control`` (``constant`` logits by default). Cells that differ only in
   their discriminator share it.

Each finished run is evaluated once more by the study, with the same samples' seed for every
run of a seed (common random numbers make the paired comparisons sharper): at every temperature
of ``spec.temperatures``, NLL-oracle (oracle data), NLL-test, the samples' per-token entropy and,
on corpora, BLEU-2..5 and Self-BLEU-2..5. The temperature sweep is the quality-diversity
frontier (NLL-oracle against NLL-test on the oracle, BLEU-4 against Self-BLEU-4 on corpora),
compared with :func:`textgym.metrics.compare_frontiers`.

**In-filling** (MaskGAN's task, :mod:`agents.infill`): a grid of ``maskgan-infill`` cells makes
an in-filling study (the task is inferred from the grid's agents; one study measures one task).
The start and the MLE control are then ``mle-infill``, the no-information control is
``discriminator="constant"`` (r_t = log 1/2), and the evaluation rebuilds each run's agent from
its checkpoint and calls :meth:`agents.infill.InfillAgent.evaluate_task` at every temperature τ:
the frontier is NLL-oracle of the test sequences completed by sampling at τ (quality) against
``nll_infill``, the NLL of the true blanks under the same tempered distribution (coverage). The
metric names of each task (tables, frontiers, curves, which side is better) are in :data:`TASKS`.

**Class-conditional generation** (:mod:`agents.conditional`): a grid of ``sentigan`` and
``catgan`` cells on ``data="oracle-classes"`` (k = 2 oracles). Their models differ (k
generators, one conditional generator), so each agent starts from its own MLE run: the agent with
its adversarial phases off, for ``spec.mle``'s ``mle_epochs`` (no early stopping), keyed
``"<agent> start"``. Its MLE control is the same agent continuing MLE for as many minibatch
updates of each generator as the adversarial phase makes (``iteration_updates``), its
no-information control ``discriminator="constant"``, and the frontier is NLL-oracle (each sample
under its own class's oracle) against NLL-test given the class, means over classes.

Statistics over seeds (:mod:`textgym.stats`): mean ± sd, and each cell's difference from its
control, from the MLE control and from the MLE start as the mean paired difference (runs of a seed
share the start and the evaluation samples) with a 95% t-interval; an interval that excludes 0
is marked as distinguishable from noise.

Outputs in ``--out``: ``spec.json``, ``cells/s<seed>/<cell>/`` (run folders, each with the
study's ``record.json``), ``results.csv``, ``results.jsonl``, ``report.md`` and ``plots/``.
Rerunning a command skips finished runs and resumes interrupted ones from their checkpoints.
``--shard i/n`` runs every n-th cell (with the starts it needs, trained again in each shard:
they are deterministic on CPU) under ``shards/i-of-n/``; ``merge`` joins what the shards wrote.

This module is the application layer above :mod:`agents` (like ``train.py``); nothing in
``textgym``, ``agents`` or ``discriminators`` imports it.
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import torch

import agents
from agents.conditional import ConditionalAgent
from agents.config import BUDGETS, ConfigError, Resolved, RunConfig, resolve, suggest
from agents.driver import RunError, atomic_write_bytes, atomic_write_json, build_agent, load_data, read_checkpoint, train
from agents.infill import InfillAgent
from textgym.data import OracleData, TextData
from textgym.metrics import FrontierPoint, compare_frontiers
from textgym.stats import Interval, mean_sd, paired_interval

SPEC_FORMAT = "textgym-study-v1"
RECORD_FORMAT = "textgym-study-cell-v1"
NO_INFORMATION = ("constant", "random")


@dataclass(frozen=True)
class Task:
    """What a study measures on one task: every metric name that the evaluation, the tables, the
    frontiers, the curves and the report use comes from here (:data:`TASKS`)."""

    name: str
    start: str  # the agent of the shared start and of the MLE control
    controls: Tuple[str, ...]  # the no-information discriminators its adversarial agents take
    metrics: Tuple[str, ...]  # the tables' columns, in order (those a data set lacks are left out)
    lower_is_better: FrozenSet[str]
    higher_is_better: FrozenSet[str]  # metrics in neither set (entropy, D accuracy, unique n-grams) have no side
    frontiers: Mapping[bool, Tuple[str, str, str]]  # data is the oracle -> (quality, diversity, both in words)
    curves: Tuple[str, ...]  # metrics.jsonl columns kept in record.json and plotted
    evaluation: str  # the report's description of the metrics at temperature 1 (str.format: samples, fills, test)
    oracle_data: str = "oracle"  # the spec.data of the task's synthetic benchmark (the frontiers' key True)
    own_starts: bool = False  # each agent starts from an MLE run of its own model (``start`` is then unused)


TASKS: Dict[str, Task] = {
    "generate": Task(
        name="generate", start="mle", controls=NO_INFORMATION,
        metrics=("nll_oracle", "nll_test", "entropy", "d_heldout_acc", *(f"bleu{n}" for n in (2, 3, 4, 5)),
                 *(f"self_bleu{n}" for n in (2, 3, 4, 5))),
        lower_is_better=frozenset({"nll_oracle", "nll_test", *(f"self_bleu{n}" for n in (2, 3, 4, 5))}),
        higher_is_better=frozenset(f"bleu{n}" for n in (2, 3, 4, 5)),
        frontiers={True: ("nll_oracle", "nll_test", "NLL-oracle against NLL-test"),
                   False: ("bleu4", "self_bleu4", "BLEU-4 against Self-BLEU-4")},
        curves=("nll_oracle", "nll_test", "entropy", "d_heldout_acc"),
        evaluation="{samples} samples; NLL-test on {test} held-out sequences), mean ± sd over seeds; `d_heldout_acc` is "
                   "the discriminator's last held-out balanced accuracy (0.5: no information)."),
    "infill": Task(  # agents.infill: fill the blanks of masked test sequences (MaskGAN's task)
        name="infill", start="mle-infill", controls=("constant",),
        metrics=("nll_oracle", "nll_infill", "unique2", "unique4"),
        lower_is_better=frozenset({"nll_oracle", "nll_infill"}), higher_is_better=frozenset(),
        frontiers={True: ("nll_oracle", "nll_infill",
                          "NLL-oracle of the completed sequences against the NLL of the true blanks")},
        curves=("nll_infill", "nll_oracle"),
        evaluation="{fills} test sequences with their blanks filled by sampling, scored by NLL-oracle; the NLL of the "
                   "true blanks on {test} test sequences, at the sampling temperature; blanks from one fixed seed), "
                   "mean ± sd over seeds; `unique2`, `unique4`: the share of distinct n-grams that touch a fill."),
    "classes": Task(  # agents.conditional: text of a given class (SentiGAN, CatGAN) on k oracles
        name="classes", start="", controls=("constant",),
        metrics=("nll_oracle", "nll_test", "nll_oracle_c0", "nll_oracle_c1", "nll_test_c0", "nll_test_c1"),
        lower_is_better=frozenset({"nll_oracle", "nll_test", "nll_oracle_c0", "nll_oracle_c1", "nll_test_c0",
                                   "nll_test_c1"}),
        higher_is_better=frozenset(),
        frontiers={True: ("nll_oracle", "nll_test", "NLL-oracle (each sample under its class's oracle) against "
                                                    "NLL-test (given the class), means over classes")},
        curves=("nll_oracle", "nll_test"),
        evaluation="{samples} samples split evenly over the classes, each scored by its own class's oracle; NLL-test "
                   "of {test} test sequences split over the classes, given their class, at the sampling temperature), "
                   "mean ± sd over seeds; `_c<i>`: class i alone.",
        oracle_data="oracle-classes", own_starts=True),
}

_TASK_WORDS = {"generate": "free generation", "infill": "in-filling", "classes": "class-conditional generation"}


class StudyError(Exception):
    """A spec or study folder that cannot be run or merged; the message says why."""


# ---------------------------------------------------------------------------- the spec
@dataclass
class StudySpec:
    """What a study runs. Every field has a default but ``name`` and ``grid``."""

    name: str
    grid: List[Dict[str, List[Any]]]  # entries {field: [values]}; "agent" is required in each
    data: str = "oracle"  # "oracle" or a corpus file (one sentence per line)
    test_data: Optional[str] = None  # a corpus's test file
    budget: str = "default"  # an agents.config budget: caps on every run's size fields
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    control: str = "constant"  # the no-information discriminator of every adversarial cell's control
    mle: Dict[str, Any] = field(default_factory=lambda: {"mle_epochs": 40, "val_size": 1000, "patience": 2})
    run: Dict[str, Any] = field(default_factory=dict)  # RunConfig values of every run (eval_every, ...)
    temperatures: List[float] = field(default_factory=lambda: [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    eval_samples: int = 2000  # samples per temperature of the study's evaluation
    eval_test_size: Optional[int] = None  # held-out sequences of NLL-test (None: the whole test set)
    bleu_samples: int = 500  # samples scored by BLEU / Self-BLEU (corpora)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> StudySpec:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k != "format"}
        for k in d:
            if k not in names:
                raise StudyError(f"unknown study spec field {k!r}{suggest(k, names)}; valid: {sorted(names)}")
        for k in ("name", "grid"):
            if k not in d:
                raise StudyError(f"a study spec needs {k!r}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        return {"format": SPEC_FORMAT, **asdict(self)}


SHAPING_AGENTS = ("seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan")

BUILTIN: Dict[str, Dict[str, Any]] = {
    "oracle-shaping": {
        "name": "oracle-shaping",
        "data": "oracle",
        "grid": [
            # each recipe with its own learned discriminator and with the optimal one (the oracle's)
            *({"agent": [a], "discriminator": [agents.preset(a).values.get("discriminator", "cnn"), "oracle"]}
              for a in SHAPING_AGENTS),
            # REINFORCE: the reward modes and transforms of a probabilistic discriminator
            {"agent": ["reinforce"], "reward": ["terminal", "mc", "dense"], "transform": ["prob", "log"],
             "discriminator": ["rnn"]},
        ],
    },
    "coco-shaping": {
        "name": "coco-shaping",
        "data": "coco/image_coco.txt",
        "test_data": "coco/test_coco.txt",
        "grid": [
            *({"agent": [a]} for a in SHAPING_AGENTS),
            {"agent": ["reinforce"], "reward": ["terminal", "mc", "dense"], "transform": ["prob", "log"],
             "discriminator": ["rnn"]},
        ],
    },
    "smoke": {  # the tests' and a first try's: two cells, two seeds, the smoke budget
        "name": "smoke",
        "budget": "smoke",
        "seeds": [0, 1],
        "mle": {"mle_epochs": 3, "val_size": 100, "patience": 1},
        "temperatures": [0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0],
        "eval_samples": 200,
        "eval_test_size": 300,
        "bleu_samples": 50,
        "grid": [{"agent": ["seqgan"], "discriminator": ["rnn"]}],
    },
    "classes-smoke": {  # class-conditional generation on two oracles: SentiGAN and CatGAN, the smoke budget
        "name": "classes-smoke",
        "data": "oracle-classes",
        "budget": "smoke",
        "seeds": [0, 1],
        "mle": {"mle_epochs": 2},
        "temperatures": [0.7, 1.0, 1.5],
        "eval_samples": 100,
        "eval_test_size": 200,
        "grid": [{"agent": ["sentigan", "catgan"]}],
    },
    "infill-smoke": {  # the in-filling task (MaskGAN's): one cell, two seeds, the smoke budget
        "name": "infill-smoke",
        "budget": "smoke",
        "seeds": [0, 1],
        "mle": {"mle_epochs": 3, "val_size": 100, "patience": 1},
        "temperatures": [0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0],
        "eval_samples": 200,
        "eval_test_size": 300,
        "grid": [{"agent": ["maskgan-infill"], "discriminator": ["seq2seq"]}],
    },
}


def load_spec(name_or_path: str) -> StudySpec:
    """A built-in spec by name, or a ``.json`` / ``.toml`` file."""
    if name_or_path in BUILTIN:
        return StudySpec.from_dict(json.loads(json.dumps(BUILTIN[name_or_path])))
    path = Path(name_or_path)
    if not path.is_file():
        raise StudyError(f"no built-in study {name_or_path!r} and no such file{suggest(name_or_path, BUILTIN)}; "
                         f"built-in: {sorted(BUILTIN)}")
    try:
        if path.suffix == ".toml":
            import tomllib

            d = tomllib.loads(path.read_text())
        else:
            d = json.loads(path.read_text())
    except ValueError as exc:
        raise StudyError(f"{path} is not a valid {path.suffix.lstrip('.') or 'JSON'} spec: {exc}") from None
    if not isinstance(d, dict):
        raise StudyError(f"{path}: a spec is a mapping of fields, got {type(d).__name__}")
    return StudySpec.from_dict(d)


# ---------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One run of the study: an agent with config values under one seed.

    ``role``: "start" (the shared MLE start), "mle" (the MLE control), "control" (a
    no-information control) or "cell" (a grid cell). ``key`` names it across seeds.
    """

    key: str
    role: str
    agent: str
    values: Tuple[Tuple[str, Any], ...]
    seed: int
    control: Optional[str] = None  # the key of a cell's no-information control
    mle_control: Optional[str] = None  # the key of its MLE control

    @property
    def folder_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9=.,_+-]", "_", self.key.replace(" ", "+"))

    def folder(self, root: Path) -> Path:
        return root / "cells" / f"s{self.seed}" / self.folder_name


def _key(agent: str, values: Dict[str, Any]) -> str:
    return " ".join([agent, *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(values.items()))])


def _freeze(values: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in values.items()))


def _thaw(values: Tuple[Tuple[str, Any], ...]) -> Dict[str, Any]:
    return {k: json.loads(v) for k, v in values}


START_KEY = "mle start"


def _run_values(spec: StudySpec, seed: int) -> Dict[str, Any]:
    run = {"data": spec.data, "seed": seed, **spec.run}
    if spec.test_data is not None:
        run["test_data"] = spec.test_data
    return run


def agent_task(agent: str) -> Optional[str]:
    """The study task of a registered agent: "generate", "infill", "classes", or None for a task of
    its own that the study does not measure."""
    cls = agents.preset(agent).agent
    if not hasattr(cls, "evaluate_task"):
        return "generate"
    if issubclass(cls, InfillAgent):
        return "infill"
    return "classes" if issubclass(cls, ConditionalAgent) else None


def start_key(task: Task, agent: str) -> str:
    """The key of the MLE start that a run of ``agent`` warm starts from."""
    return f"{agent} start" if task.own_starts else START_KEY


def start_values(task: Task, spec: StudySpec, agent: str) -> Dict[str, Any]:
    """Config values of an MLE start: ``spec.mle``; for an agent that starts from its own model,
    that agent with its adversarial phases switched off."""
    if not task.own_starts:
        return dict(spec.mle)
    names = {f.name for f in fields(agents.preset(agent).config_class)}
    return {**spec.mle, **{k: 0 for k in ("adv_steps", "d_pretrain_steps") if k in names}}


def task_of(spec: StudySpec) -> Task:
    """The task of a spec, from its grid's agents (free generation when it names none that
    :func:`expand` accepts); StudyError when they mix tasks."""
    found: Dict[str, List[str]] = {}
    for entry in spec.grid:
        names = entry.get("agent", []) if isinstance(entry, dict) else []
        for agent in names if isinstance(names, list) else [names]:
            if isinstance(agent, str) and agent in agents.PRESETS:
                task = agent_task(agent)
                if task is not None and agent not in found.setdefault(task, []):
                    found[task].append(agent)
    if len(found) > 1:
        raise StudyError("a study measures one task, and this grid mixes " + " and ".join(
            f"{_TASK_WORDS[t]} ({', '.join(a)})" for t, a in sorted(found.items())) + ": split it into one study per task")
    return TASKS[next(iter(found), "generate")]


def resolved_for(cell: Cell, spec: StudySpec, root: Path) -> Any:
    """The cell's :class:`agents.config.Resolved` (the warm start points into ``root``)."""
    explicit = {**_run_values(spec, cell.seed), **_thaw(cell.values)}
    if cell.role != "start":
        explicit["init_from"] = str(Cell(start_key(task_of(spec), cell.agent), "start", "", (), cell.seed).folder(root))
    return resolve(agents.preset(cell.agent), spec.budget, explicit=explicit)


def expand(spec: StudySpec) -> List[Cell]:
    """Every run of the study, validated: starts first, then for each seed the MLE controls, the
    no-information controls and the grid cells. Raises StudyError before anything runs."""
    if not spec.grid:
        raise StudyError("the study's grid is empty")
    if not spec.seeds:
        raise StudyError("the study needs at least one seed")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise StudyError(f"seeds repeat: {spec.seeds}")
    if spec.budget not in BUDGETS:
        raise StudyError(f"unknown budget {spec.budget!r}{suggest(spec.budget, BUDGETS)}; valid: {sorted(BUDGETS)}")
    if spec.control not in NO_INFORMATION:
        raise StudyError(f"control must be one of {list(NO_INFORMATION)}, got {spec.control!r}")
    if len(spec.temperatures) < 2 or any(not (isinstance(t, (int, float)) and t > 0) for t in spec.temperatures):
        raise StudyError(f"temperatures must be at least 2 positive numbers, got {spec.temperatures}")
    if 1.0 not in spec.temperatures:
        raise StudyError("temperatures must include 1.0 (the cells' own sampling distribution)")
    task = task_of(spec)
    if (spec.data == task.oracle_data) not in task.frontiers:
        raise StudyError(f"a study of {_TASK_WORDS[task.name]} needs data {task.oracle_data!r} (its frontier's quality "
                         f"is an oracle's NLL), not {spec.data!r}")
    if spec.control not in task.controls:
        raise StudyError(f"control {spec.control!r} is not a no-information discriminator of the "
                         f"{_TASK_WORDS[task.name]} agents; use one of {list(task.controls)}")
    grid_cells: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for i, entry in enumerate(spec.grid):
        if not isinstance(entry, dict) or "agent" not in entry:
            raise StudyError(f"grid entry {i} must be a mapping with an 'agent' list, got {entry!r}")
        axes = {k: (v if isinstance(v, list) else [v]) for k, v in entry.items()}
        if any(len(v) == 0 for v in axes.values()):
            raise StudyError(f"grid entry {i} has an empty list: {entry!r}")
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            agent = values.pop("agent")
            if agent not in agents.PRESETS:
                raise StudyError(f"grid entry {i}: unknown agent {agent!r}{suggest(str(agent), agents.PRESETS)}; "
                                 f"valid: {sorted(agents.PRESETS)}")
            if agent == task.start:
                raise StudyError(f"grid entry {i}: {agent!r} is not a grid cell; the study adds the MLE control itself")
            if agent_task(agent) is None:
                raise StudyError(f"grid entry {i}: {agent!r} works on a task of its own that the study does not "
                                 f"measure (its tasks: {sorted(TASKS)})")
            if "seed" in values or "init_from" in values:
                raise StudyError(f"grid entry {i}: 'seed' and 'init_from' are set by the study (use 'seeds')")
            grid_cells.setdefault(_key(agent, values), (agent, values))
    start_agents = sorted({a for a, _ in grid_cells.values()}) if task.own_starts else [task.start]
    cells: List[Cell] = [Cell(start_key(task, a), "start", a, _freeze(start_values(task, spec, a)), s)
                         for s in spec.seeds for a in start_agents]
    probe = Path("<study>")
    for start in cells[: len(start_agents)]:
        try:
            resolved_for(start, spec, probe)
        except ConfigError as exc:
            hint = (f" (the start of {start.agent} is that agent's own MLE phase: spec.mle takes its fields, e.g. "
                    "mle_epochs)" if task.own_starts else "")
            raise StudyError(f"the spec's mle start{hint}: {exc}") from None
    by_seed: List[Cell] = []
    for key, (agent, values) in grid_cells.items():
        cell = Cell(key, "cell", agent, _freeze(values), spec.seeds[0])
        try:
            resolved = resolved_for(cell, spec, probe)
        except ConfigError as exc:
            raise StudyError(f"cell {key!r}: {exc}") from None
        c = resolved.config
        if spec.data != task.oracle_data and getattr(c, "discriminator", None) == "oracle":
            raise StudyError(f"cell {key!r}: discriminator 'oracle' needs data 'oracle', not {spec.data!r}")
        adversarial = hasattr(c, "discriminator") and hasattr(c, "adv_steps")
        if not adversarial:
            raise StudyError(f"cell {key!r}: agent {agent!r} has no discriminator and adversarial steps to study")
        g_steps = int(getattr(c, "g_steps", 1))  # SB3 agents: one update phase per iteration
        updates = int(c.adv_steps) * g_steps
        mle_agent = agent if task.own_starts else task.start
        mle_key = f"{agent} mle +{updates} updates" if task.own_starts else f"{task.start} +{updates} updates"
        matched = {"mle_epochs": int(c.adv_steps), "iteration_updates": g_steps}
        if task.own_starts:  # the agent itself, its adversarial phases off
            matched = {**start_values(task, spec, agent), **matched}
        by_seed.append(Cell(mle_key, "mle", mle_agent, _freeze(matched), 0))
        if c.discriminator in NO_INFORMATION and c.discriminator not in task.controls:
            raise StudyError(f"cell {key!r}: discriminator {c.discriminator!r} is not one of this task's "
                             f"no-information controls {list(task.controls)}")
        if c.discriminator in NO_INFORMATION:
            by_seed.append(Cell(key, "control", agent, _freeze(values), 0, mle_control=mle_key))
            continue
        ctrl_values = {**values, "discriminator": spec.control}
        ctrl_key = _key(agent, ctrl_values)
        by_seed.append(Cell(ctrl_key, "control", agent, _freeze(ctrl_values), 0, mle_control=mle_key))
        by_seed.append(Cell(key, "cell", agent, _freeze(values), 0, control=ctrl_key, mle_control=mle_key))
    unique: Dict[str, Cell] = {}  # controls shared by several cells appear once
    for c0 in sorted(by_seed, key=lambda c: ({"mle": 0, "control": 1, "cell": 2}[c.role], c.key)):
        unique.setdefault(c0.key, c0)
    for seed in spec.seeds:
        cells.extend(Cell(c.key, c.role, c.agent, c.values, seed, c.control, c.mle_control) for c in unique.values())
    return cells


def parse_shard(text: str) -> Tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise StudyError(f"--shard must be i/n with 1 <= i <= n (e.g. 2/8), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_cells(cells: List[Cell], shard: Optional[Tuple[int, int]]) -> List[Cell]:
    """The runs of one shard: every n-th non-start run (in a fixed order), with the starts they need."""
    if shard is None:
        return cells
    i, n = shard
    work = [c for c in cells if c.role != "start"]
    mine = [c for j, c in enumerate(work) if j % n == i - 1]
    seeds = {c.seed for c in mine}
    return [c for c in cells if c.role == "start" and c.seed in seeds] + mine


# ---------------------------------------------------------------------------- one run
def _curves(folder: Path, task: Task) -> List[Dict[str, Any]]:
    keep = ("iteration", "phase", *task.curves, "nll_val")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: r[k] for k in keep if k in r} for r in rows]


def evaluate_sweep(folder: Path, data: TextData, spec: StudySpec, seed: int, device: str,
                   resolved: Optional[Resolved] = None) -> List[Dict[str, Any]]:
    """The study's evaluation of a finished run's generator at every temperature, with the same
    sampling seed for every run of ``seed`` and every temperature.

    In-filling (``resolved`` needed): the run's agent, rebuilt from its checkpoint, fills the
    blanks of the test sequences at each temperature τ (:meth:`agents.infill.InfillAgent.evaluate_task`,
    whose ``nll_infill`` is the NLL of the true blanks at τ)."""
    sample_seed = 1_000_003 * (seed + 1)
    if task_of(spec).name in ("infill", "classes"):
        if resolved is None:
            raise ValueError("an in-filling or class-conditional sweep rebuilds the run's agent: pass its resolved config")
        _, state = read_checkpoint(folder / "checkpoint.pt")
        agent = build_agent(resolved, data, device)
        if not isinstance(agent, (InfillAgent, ConditionalAgent)):
            raise RunError(f"{folder}: agent {resolved.agent!r} has no task evaluation at a temperature")
        agent.load_state_dict(state)
        return [{"temperature": float(tau), **agent.evaluate_task(spec.eval_samples, spec.eval_test_size, sample_seed,
                                                                  temperature=float(tau))[0]}
                for tau in spec.temperatures]
    from textgym.evaluate import evaluate_generator, load_generator

    gen, _ = load_generator(folder / "generator.pt", device=device)
    orders = () if isinstance(data, OracleData) else (2, 3, 4, 5)
    out = []
    for tau in spec.temperatures:
        ev = evaluate_generator(gen, data, n_samples=spec.eval_samples, seed=sample_seed, temperature=tau,
                                test_size=spec.eval_test_size, bleu_samples=spec.bleu_samples, bleu_orders=orders)
        out.append({"temperature": float(tau), **ev.metrics})
    return out


def run_cell(cell: Cell, spec: StudySpec, root: Path, device: str = "cpu", threads: int = 0) -> Dict[str, Any]:
    """Train (or resume, or reuse) one run and evaluate it; returns and writes its ``record.json``."""
    if threads > 0:
        torch.set_num_threads(threads)
    folder = cell.folder(root)
    record_path = folder / "record.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("format") == RECORD_FORMAT:
            return record
    t0 = time.perf_counter()
    resolved = resolved_for(cell, spec, root)
    with warnings.catch_warnings(record=True) as caught:  # kept in the record, not printed across the progress bar
        warnings.simplefilter("always")
        summary = train(resolved, folder, device=device, resume=(folder / "checkpoint.pt").is_file(), quiet=True)
        data = load_data(resolved.run)
        sweep = evaluate_sweep(folder, data, spec, cell.seed, device, resolved)
    record = {
        "format": RECORD_FORMAT, "key": cell.key, "role": cell.role, "agent": cell.agent, "seed": cell.seed,
        "values": _thaw(cell.values), "control": cell.control, "mle_control": cell.mle_control,
        "iterations": summary["iterations"], "train_seconds": summary["train_seconds"],
        "summary_metrics": summary["metrics"], "curves": _curves(folder, task_of(spec)), "sweep": sweep,
        "seconds": round(time.perf_counter() - t0, 2), "warnings": sorted({str(w.message) for w in caught}),
    }
    atomic_write_json(record_path, record)
    return record


def _worker(job: Tuple[Cell, Dict[str, Any], str, str, int]) -> Dict[str, Any]:
    cell, spec_dict, root, device, threads = job
    return run_cell(cell, StudySpec.from_dict(spec_dict), Path(root), device, threads)


# ---------------------------------------------------------------------------- the study
def _check_folder_spec(out: Path, spec: StudySpec) -> None:
    path = out / "spec.json"
    new = json.loads(json.dumps(spec.to_dict()))
    if path.is_file():
        old = json.loads(path.read_text())
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StudyError(f"{out} holds a study with another spec (fields {diff} differ); choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise StudyError(f"{out} is not empty and holds no study; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, spec.to_dict())


def run_study(spec: StudySpec, out: Path, *, workers: int = 1, shard: Optional[Tuple[int, int]] = None,
              device: str = "cpu", quiet: bool = False) -> Dict[str, Any]:
    """Run (or resume) a study, or one shard of it; writes the outputs when the study is whole.

    Returns ``{"runs": records, "seconds": wall time, "report": path or None}``.
    """
    from tqdm import tqdm

    cells = expand(spec)
    data = load_data(RunConfig(**{k: v for k, v in _run_values(spec, spec.seeds[0]).items()
                                  if k in {f.name for f in fields(RunConfig)}}))
    del data  # loaded once to refuse missing or mismatched data before any training
    out = Path(out)
    _check_folder_spec(out, spec)
    root = out if shard is None else out / "shards" / f"{shard[0]}-of-{shard[1]}"
    todo = shard_cells(cells, shard)
    started = time.perf_counter()
    threads = max(1, (torch.get_num_threads() if workers == 1 else (torch.get_num_threads() // workers)))
    records: List[Dict[str, Any]] = []
    failures: List[str] = []
    bar = tqdm(total=len(todo), desc=f"study {spec.name}", disable=quiet, dynamic_ncols=True, unit="run")
    try:
        for phase in (("start",), ("mle", "control", "cell")):
            failed_seeds = {int(f.split()[0][1:]) for f in failures}
            jobs = [c for c in todo if c.role in phase and c.seed not in failed_seeds]  # a failed start stops its seed
            if workers <= 1 or len(jobs) <= 1:
                for c in jobs:
                    bar.set_postfix_str(f"s{c.seed} {c.key}")
                    try:
                        records.append(run_cell(c, spec, root, device))
                    except (FloatingPointError, RunError, RuntimeError, ValueError) as exc:
                        failures.append(f"s{c.seed} {c.key}: {type(exc).__name__}: {exc}")
                    bar.update(1)
                continue
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_worker, (c, spec.to_dict(), str(root), device, threads)): c for c in jobs}
                for fut in as_completed(futures):
                    c = futures[fut]
                    try:
                        records.append(fut.result())
                    except (FloatingPointError, RunError, RuntimeError, ValueError) as exc:
                        failures.append(f"s{c.seed} {c.key}: {type(exc).__name__}: {exc}")
                    bar.set_postfix_str(f"done s{c.seed} {c.key}")
                    bar.update(1)
    finally:
        bar.close()
    if failures:
        raise StudyError(f"{len(failures)} run(s) failed; the others are kept, and rerunning the command retries "
                         "these:\n  " + "\n  ".join(failures))
    seconds = time.perf_counter() - started
    report = write_outputs(out, spec, collect(out, spec)) if shard is None else None
    return {"runs": records, "seconds": seconds, "report": report}


def collect(out: Path, spec: StudySpec, partial: bool = False) -> List[Dict[str, Any]]:
    """The records of every run of the study under ``out`` (its own cells and every shard's);
    StudyError naming the missing runs unless ``partial``."""
    found: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for path in sorted(out.glob("cells/s*/*/record.json")) + sorted(out.glob("shards/*/cells/s*/*/record.json")):
        try:
            rec = json.loads(path.read_text())
        except ValueError:
            raise StudyError(f"{path} is corrupt (not JSON); delete it and rerun the study to redo that run") from None
        if rec.get("format") != RECORD_FORMAT:
            raise StudyError(f"{path} is not a study record (format {rec.get('format')!r})")
        found.setdefault((rec["seed"], rec["key"]), rec)
    wanted = [(c.seed, c.key) for c in expand(spec)]
    missing = [w for w in wanted if w not in found]
    if missing and not partial:
        names = ", ".join(f"s{s} {k}" for s, k in missing[:8]) + (" …" if len(missing) > 8 else "")
        raise StudyError(f"{len(missing)} of {len(wanted)} runs have no results yet ({names}); run the missing "
                         "shards, or merge with --partial")
    return [found[w] for w in wanted if w in found]


# ---------------------------------------------------------------------------- analysis
def _at(record: Dict[str, Any], tau: float = 1.0) -> Dict[str, Any]:
    """The metrics of a run: the study's evaluation at ``tau`` plus the discriminator's last held-out figures."""
    m = next((dict(r) for r in record["sweep"] if r["temperature"] == tau), {})
    m.pop("temperature", None)
    acc = record["summary_metrics"].get("d_heldout_acc")
    if acc is not None:
        m["d_heldout_acc"] = acc
    return m


def frontier_axes(spec: StudySpec) -> Tuple[str, str, str]:
    """(quality, diversity, both in words) of the spec's frontiers: its task's, on its data."""
    task = task_of(spec)
    return task.frontiers[spec.data == task.oracle_data]


def frontier_points(record_or_sweep: Any, name: str, axes: Sequence[str]) -> List[FrontierPoint]:
    """The sweep's points on the frontier ``axes`` = (quality, diversity, ...) of :func:`frontier_axes`."""
    sweep = record_or_sweep["sweep"] if isinstance(record_or_sweep, dict) else record_or_sweep
    q, d = axes[0], axes[1]
    return [FrontierPoint(name, r["temperature"], r[q], r[d], q, d) for r in sweep]


def _mean_sweep(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The sweeps of several seeds averaged per temperature (same temperatures in each)."""
    out = []
    for rows in zip(*(r["sweep"] for r in records), strict=True):
        keys = set.intersection(*(set(r) for r in rows))
        out.append({k: statistics.fmean(r[k] for r in rows) for k in keys})
    return out


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
            xs = [_at(r)[m] for r in runs.values() if _at(r).get(m) is not None]
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
                both = [s for s in seeds if _at(runs[s]).get(m) is not None and _at(ref[s]).get(m) is not None]
                ci = paired_interval([_at(runs[s])[m] for s in both], [_at(ref[s])[m] for s in both]) if both else None
                if ci is not None:
                    diffs[m] = ci.as_dict()
            areas = []
            for s in seeds:
                comp = compare_frontiers(frontier_points(runs[s], key, axes), frontier_points(ref[s], ref_key, axes))
                areas.append(comp.area)
            mean = compare_frontiers(frontier_points(_mean_sweep([runs[s] for s in seeds]), key, axes),
                                     frontier_points(_mean_sweep([ref[s] for s in seeds]), ref_key, axes)) if seeds else None
            area_ci = paired_interval(areas, [0.0] * len(areas))
            entry[label] = {"key": ref_key, "seeds": seeds, "differences": diffs,
                            "frontier": None if mean is None else {
                                "verdict": mean.verdict, "area_of_means": mean.area, "areas": areas,
                                "area": None if area_ci is None else area_ci.as_dict()}}
        comparisons.append(entry)
    return {"rows": rows, "comparisons": comparisons}


# ---------------------------------------------------------------------------- outputs
def _fmt_ci(d: Optional[Dict[str, Any]]) -> str:
    if not d:
        return "–"
    return str(Interval(d["estimate"], d["low"], d["high"], d["df"], d["level"]))


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
    compared = [m for m in present if m not in ("d_heldout_acc",)]
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
    lines += ["", "## Differences (mean of the paired differences over seeds [95% t-interval]; * excludes 0)", ""]
    lines += ["| cell | against | " + " | ".join(m.replace("_", "-") for m in compared) + " | frontier | frontier area |",
              "|---|---|" + "---:|" * len(compared) + "---|---:|"]
    for comp in analysis["comparisons"]:
        for label in ("control", "mle", "start"):
            c = comp[label]
            fr = c["frontier"] or {}
            lines.append(f"| {comp['key']} | {c['key']} | " + " | ".join(_fmt_ci(c["differences"].get(m)) for m in compared)
                         + f" | {fr.get('verdict', '–')} | {_fmt_ci(fr.get('area'))} |")
    quality, _, axes = frontier_axes(spec)
    lines += ["", f"Frontier: the Pareto frontiers of the temperature sweeps {spec.temperatures} ({axes}), averaged "
              "over seeds: *dominates* (at least as good wherever the reference attains a diversity, and reaching as "
              "far), *dominated*, *crosses* or *equal*. "
              "Area: ∫ (reference − cell) over the common range with lower-is-better axes, per seed [95% interval]; "
              "positive means the cell is better.", ""]
    lines += ["## Reading", ""] + reading(analysis, quality, task)
    return "\n".join(lines) + "\n"


def reading(analysis: Dict[str, Any], q: str, task: Task) -> List[str]:
    """Sentences generated from the numbers: which cells beat their controls on the frontier's
    quality ``q``, and where none does."""
    out: List[str] = []
    winners = []
    for comp in analysis["comparisons"]:
        ctrl = comp["control"]
        vs_ctrl = _better(q, ctrl["differences"].get(q, {}), task)
        fronts = {label: comp[label]["frontier"] or {} for label in ("control", "mle", "start")}
        names = (("control", "control"), ("mle", "MLE control"), ("start", "MLE start"))
        verdicts = ", ".join(f"{name} {fronts[label].get('verdict', '–')} (area {_fmt_ci(fronts[label].get('area'))})"
                             for label, name in names)
        desc = (f"`{comp['key']}`: {q.replace('_', '-')} vs its no-information control "
                f"{_fmt_ci(ctrl['differences'].get(q))}; frontier vs {verdicts}")
        beats_mle = all(fronts[label].get("verdict") == "dominates" and (fronts[label].get("area") or {}).get("low", 0) > 0
                        for label in ("mle", "start"))
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
    unclear = [c["key"] for c in analysis["comparisons"] if _better(q, c["control"]["differences"].get(q, {}), task) is None]
    if unclear:
        out.append(f"- Indistinguishable from their no-information control on {q.replace('_', '-')}: "
                   + ", ".join(f"`{k}`" for k in unclear) + ".")
    dominated = [c["key"] for c in analysis["comparisons"] if (c["mle"]["frontier"] or {}).get("verdict") == "dominated"]
    if dominated:
        out.append("- Frontier dominated by the MLE control's (the same updates spent on MLE do better at every "
                   "diversity): " + ", ".join(f"`{k}`" for k in dominated) + ".")
    moved = [c["key"] for c in analysis["comparisons"] if (c["start"]["frontier"] or {}).get("verdict") == "equal"
             or all(not d.get("excludes_zero") for d in c["start"]["differences"].values())]
    if moved:
        out.append("- Not distinguishable from the MLE start on any metric (the updates did not move the generator "
                   "measurably): " + ", ".join(f"`{k}`" for k in moved) + ".")
    return out


def write_outputs(out: Path, spec: StudySpec, records: List[Dict[str, Any]]) -> Path:
    """results.csv, results.jsonl, report.md and plots/ of the study folder ``out``; returns report.md."""
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
    accuracy; in-filling: NLL of the true blanks and NLL-oracle)."""
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
            if by_key.get(k):
                points += frontier_points(_mean_sweep(by_key[k]), label, axes)
        written.append(plot_frontier(points, plots / f"frontier-{name}.png",
                                     title=f"{key} (mean of {len(by_key[key])} seeds)"))
        folders = [f for k in (key, comp["control"]["key"], comp["mle"]["key"])
                   for f in sorted(out.glob(f"cells/s*/{Cell(k, '', '', (), 0).folder_name}"))
                   + sorted(out.glob(f"shards/*/cells/s*/{Cell(k, '', '', (), 0).folder_name}"))]
        written.append(plot_training_curves(
            folders, plots / f"curves-{name}.png", keys=task.curves,
            labels=[f"{f.name} ({f.parent.name})" for f in folders]))
    return written


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
            spec = StudySpec.from_dict(json.loads((out / "spec.json").read_text()))
            report = write_outputs(out, spec, collect(out, spec, partial=args.partial))
            print(f"report: {report}")
            return 0
        spec = _with_overrides(load_spec(args.spec), args.budget, args.seeds)
        if args.workers < 1:
            raise StudyError(f"--workers must be >= 1, got {args.workers}")
        shard = parse_shard(args.shard) if args.shard else None
        out = Path(args.out or f"runs/study-{spec.name}-{spec.budget}")
        result = run_study(spec, out, workers=args.workers, shard=shard, device=args.device, quiet=args.quiet)
    except (StudyError, ConfigError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result["report"] is not None:
        print(Path(result["report"]).read_text())
        print(f"study folder: {out} ({result['seconds'] / 60:.1f} min)")
    else:
        print(f"shard {args.shard} done in {result['seconds'] / 60:.1f} min; when every shard is done: "
              f"python -m textgym.study merge {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
