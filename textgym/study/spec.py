"""What a study runs: its spec, its tasks and the cells (runs) a spec expands to."""
from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

import agents
from agents.conditional import ConditionalAgent
from agents.config import BUDGETS, ConfigError, resolve, suggest
from agents.infill import InfillAgent

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
        metrics=("nll_oracle", "nll_test", "nll_test_known", "entropy", "d_heldout_acc", *(f"bleu{n}" for n in (2, 3, 4, 5)),
                 *(f"self_bleu{n}" for n in (2, 3, 4, 5))),
        lower_is_better=frozenset({"nll_oracle", "nll_test", "nll_test_known", *(f"self_bleu{n}" for n in (2, 3, 4, 5))}),
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
        metrics=("nll_oracle", "nll_test", "nll_oracle_c0", "nll_oracle_c1", "nll_test_c0", "nll_test_c1",
                 "d_heldout_acc", "d_heldout_acc_hard", "d_heldout_class_acc"),
        lower_is_better=frozenset({"nll_oracle", "nll_test", "nll_oracle_c0", "nll_oracle_c1", "nll_test_c0",
                                   "nll_test_c1"}),
        higher_is_better=frozenset(),
        frontiers={True: ("nll_oracle", "nll_test", "NLL-oracle (each sample under its class's oracle) against "
                                                    "NLL-test (given the class), means over classes")},
        curves=("nll_oracle", "nll_test", "d_heldout_acc"),
        evaluation="{samples} samples split evenly over the classes, each scored by its own class's oracle; NLL-test "
                   "of {test} test sequences split over the classes, given their class, at the sampling temperature), "
                   "mean ± sd over seeds; `_c<i>`: class i alone; `d_heldout_*`: the discriminator's last held-out "
                   "figures (`agents.conditional`: 0.5 is chance for `d_heldout_acc` and CatGAN's `d_heldout_acc_hard`, "
                   "1/(k+1) for SentiGAN's `d_heldout_class_acc`).",
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
    data: str = "oracle"  # "oracle", "oracle-classes", a named corpus ("coco") or a corpus file (one sentence per line)
    test_data: Optional[str] = None  # a corpus file's test file (a named corpus has its own)
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
        if "format" in d and d["format"] != SPEC_FORMAT:  # to_dict writes it; a hand-written spec may leave it out
            raise StudyError(f"the spec's \"format\" is {d['format']!r}, not this version's {SPEC_FORMAT!r}: "
                             f"bring its fields up to this version and set \"format\": {SPEC_FORMAT!r}, or leave it out")
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

#: what the smoke specs share: two seeds, the smoke budget, a short start, a small evaluation
_SMOKE: Dict[str, Any] = {"budget": "smoke", "seeds": [0, 1], "mle": {"mle_epochs": 3, "val_size": 100, "patience": 1},
                          "temperatures": [0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0], "eval_samples": 200,
                          "eval_test_size": 300}

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
        "data": "coco",
        "grid": [
            *({"agent": [a]} for a in SHAPING_AGENTS),
            {"agent": ["reinforce"], "reward": ["terminal", "mc", "dense"], "transform": ["prob", "log"],
             "discriminator": ["rnn"]},
        ],
    },
    "smoke": {  # the tests' and a first try's: two cells, two seeds, the smoke budget
        "name": "smoke", **_SMOKE, "bleu_samples": 50,
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
        "name": "infill-smoke", **_SMOKE,
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


#: the run fields that the study sets on every run itself, and where each run's value comes from
STUDY_SET = {"seed": "one run per seed of the spec's seeds", "init_from": "each run warm starts from its seed's MLE start",
             "data": "every run takes the spec's data", "test_data": "every run takes the spec's test_data"}


def _refuse_study_set(where: str, values: Mapping[str, Any]) -> None:
    """StudyError for a field of :data:`STUDY_SET` in ``values``: a seed there made every seed's run
    the same run reported as different seeds, and data there crashed the evaluation after training."""
    for k in STUDY_SET:
        if k in values:
            raise StudyError(f"{where} sets {k!r}, which the study sets itself ({STUDY_SET[k]}); leave it out")


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


def iteration_updates(agent: str, resolved: Any, spec: StudySpec) -> int:
    """The generator's optimizer steps per adversarial iteration of ``agent`` as ``resolved``:
    ``g_steps``, or what the agent class says it makes (an SB3 agent: PPO's epochs of minibatches,
    which depend on the data's sequence length)."""
    per = getattr(agents.preset(agent).agent, "updates_per_iteration", None)
    if per is None:
        return int(getattr(resolved.config, "g_steps", 1))
    from textgym.data import resolve_data

    return int(per(resolved.config, resolved.run.max_length or resolve_data(spec.data).max_length))


def resolved_for(cell: Cell, spec: StudySpec, root: Path) -> Any:
    """The cell's :class:`agents.config.Resolved` (the warm start points into ``root``)."""
    explicit = {**_run_values(spec, cell.seed), **_thaw(cell.values)}
    if cell.role != "start":
        explicit["init_from"] = str(Cell(start_key(task_of(spec), cell.agent), "start", "", (), cell.seed).folder(root))
    return resolve(agents.preset(cell.agent), spec.budget, explicit=explicit)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON's true is an int in Python


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_types(spec: StudySpec) -> None:
    """StudyError for a spec field of the wrong type or range: the study's evaluation reads its
    sizes only after the runs have trained, and a bool passes for an int seed."""
    sequence = (list, tuple)
    words = {str: "a string", sequence: "a list", dict: "a mapping of config fields"}
    for name, tp in (("name", str), ("data", str), ("budget", str), ("control", str), ("grid", sequence),
                     ("seeds", sequence), ("temperatures", sequence), ("mle", dict), ("run", dict)):
        if not isinstance(getattr(spec, name), tp):
            raise StudyError(f"{name} must be {words[tp]}, got {getattr(spec, name)!r}")
    if not spec.name or spec.name.startswith(".") or re.search(r"[/\\\x00-\x1f]", spec.name):
        raise StudyError(f"name must not be empty, start with '.' or hold a path separator (it names the study's "
                         f"folder), got {spec.name!r}")
    bad = [s for s in spec.seeds if not _is_int(s) or s < 0]
    if bad:
        raise StudyError(f"seeds must be integers >= 0, got {', '.join(map(repr, bad))} in {spec.seeds}")
    for name in ("eval_samples", "eval_test_size", "bleu_samples"):
        v = getattr(spec, name)
        least = 2 if name == "bleu_samples" else 1  # Self-BLEU scores each sample against the others
        if not (v is None and name == "eval_test_size") and not (_is_int(v) and v >= least):
            whole = " (or null: the whole test set)" if name == "eval_test_size" else ""
            raise StudyError(f"{name} must be an integer >= {least}{whole}, got {v!r}")


def expand(spec: StudySpec) -> List[Cell]:
    """Every run of the study, validated: starts first, then for each seed the MLE controls, the
    no-information controls and the grid cells. Raises StudyError before anything runs."""
    _check_types(spec)
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
    if len(spec.temperatures) < 2 or any(not (_is_number(t) and 0 < t < math.inf) for t in spec.temperatures):
        raise StudyError(f"temperatures must be at least 2 finite positive numbers, got {spec.temperatures}")
    if len(set(spec.temperatures)) != len(spec.temperatures):
        raise StudyError(f"temperatures repeat: {spec.temperatures}")
    _refuse_study_set("spec.run", spec.run)
    _refuse_study_set("spec.mle", spec.mle)
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
        _refuse_study_set(f"grid entry {i}", entry)
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            agent = values.pop("agent")
            if not isinstance(agent, str) or agent not in agents.PRESETS:
                raise StudyError(f"grid entry {i}: unknown agent {agent!r}{suggest(str(agent), agents.PRESETS)}; "
                                 f"valid: {sorted(agents.PRESETS)}")
            if agent == task.start:
                raise StudyError(f"grid entry {i}: {agent!r} is not a grid cell; the study adds the MLE control itself")
            if agent_task(agent) is None:
                raise StudyError(f"grid entry {i}: {agent!r} works on a task of its own that the study does not "
                                 f"measure (its tasks: {sorted(TASKS)})")
            key = _key(agent, values)
            same = grid_cells.setdefault(key, (agent, values))[1]
            if _freeze(same) != _freeze(values):  # e.g. 2 and "2": one key, one folder, two configs
                raise StudyError(f"grid entry {i}: the values {same} and {values} of agent {agent!r} both write as "
                                 f"{key!r}; give each value once, with one type")
    start_agents = sorted({a for a, _ in grid_cells.values()}) if task.own_starts else [task.start]
    cells: List[Cell] = [Cell(start_key(task, a), "start", a, _freeze(start_values(task, spec, a)), s)
                         for s in spec.seeds for a in start_agents]
    probe = Path("<study>")
    from agents.config import RunConfig

    run_fields = {f.name for f in fields(RunConfig)}
    for k in spec.run:  # RunConfig values only: an agent's field would pass for one agent and fail another
        if k not in run_fields:
            raise StudyError(f"spec.run: unknown run config key {k!r}{suggest(str(k), run_fields)}; it takes "
                             "RunConfig fields (eval_every, eval_samples, ...), an agent's fields go in the grid")
    for start in cells[: len(start_agents)]:
        try:
            start_run = resolved_for(start, spec, probe)
        except ConfigError as exc:
            hint = (f" (the start of {start.agent} is that agent's own MLE phase: spec.mle takes its fields, e.g. "
                    "mle_epochs)" if task.own_starts else "")
            raise StudyError(f"the spec's mle start{hint}: {exc}") from None
        val_size, train_size = getattr(start_run.config, "val_size", 0), start_run.run.train_size
        if val_size and train_size is not None and val_size >= train_size:
            raise StudyError(f"the spec's mle start holds out val_size = {val_size} sequences, but budget "
                             f"{spec.budget!r} keeps train_size = {train_size}: set mle.val_size below it in the spec "
                             "(the built-in 'smoke' spec is a quick first try)")
    by_seed: List[Cell] = []
    configs: Dict[str, str] = {}  # a resolved configuration -> the first cell key that resolves to it
    for key, (agent, values) in grid_cells.items():
        cell = Cell(key, "cell", agent, _freeze(values), spec.seeds[0])
        try:
            resolved = resolved_for(cell, spec, probe)
        except ConfigError as exc:
            raise StudyError(f"cell {key!r}: {exc}") from None
        first = configs.setdefault(json.dumps([agent, resolved.to_json()["values"]], sort_keys=True, default=str), key)
        if first != key:  # e.g. a default written out: one run, reported twice
            raise StudyError(f"cells {first!r} and {key!r} resolve to the same configuration; list it once")
        c = resolved.config
        if spec.data != task.oracle_data and getattr(c, "discriminator", None) == "oracle":
            raise StudyError(f"cell {key!r}: discriminator 'oracle' needs data 'oracle', not {spec.data!r}")
        adversarial = hasattr(c, "discriminator") and hasattr(c, "adv_steps")
        if not adversarial:
            raise StudyError(f"cell {key!r}: agent {agent!r} has no discriminator and adversarial steps to study")
        if getattr(c, "policy", "generator") != "generator":  # every cell starts from the MLE start's generator
            raise StudyError(f"cell {key!r}: policy {c.policy!r} cannot start from the study's MLE generator and "
                             "writes no generator file to evaluate; use policy 'generator'")
        g_steps = iteration_updates(agent, resolved, spec)
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
    folders: Dict[str, str] = {}
    for c0 in unique.values():  # a run's folder is named after its key with odd characters replaced
        other = folders.setdefault(c0.folder_name, c0.key)
        if other != c0.key:
            raise StudyError(f"runs {other!r} and {c0.key!r} would share the folder {c0.folder_name!r}; write their "
                             "values so that they differ in letters, digits or = . , _ + -")
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
