"""Typed configurations: one dataclass per algorithm, named presets, budgets, and their resolution.

Every field is declared with :func:`param`: its type (the annotation), its default, one line of
help and its *kind*:

- ``RECIPE``: the algorithm's own choice (learning rates, batch size, discount, baseline,
  rollout rule, discriminator architecture). A budget never changes it.
- ``SIZE``: how much work a run does (epochs, adversarial steps, samples per discriminator
  round, Monte-Carlo rollouts, evaluation sizes). ``--budget`` caps it.
- ``RUN``: what the run is about (data, seed, warm start); neither presets nor budgets set it.

A *preset* (:class:`Preset`) is a named recipe: an agent class, its config values and the paper
they come from. A *budget* caps size fields: each size field becomes ``min(preset, cap)``; a
size the recipe sets to 0 (ScratchGAN's MLE pretraining, say) stays 0, because 0 turns a phase
off, which is a recipe choice; a field with ``scale_with`` (a schedule period, such as
MaliGAN-mixed's ``mixed_every``) is scaled by the ratio its reference field was capped by, so
the whole schedule still fits the shorter run. The ``paper`` budget caps nothing.

Resolution (:func:`resolve`), later wins: class default < preset < budget < config file <
explicit values (flags). :class:`Resolved` keeps, for every field, where its value came from.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Literal, Mapping, Optional, Tuple, TypeVar, Union

if TYPE_CHECKING:
    from textgym.rewards import KLController

RECIPE, SIZE, RUN = "recipe", "size", "run"
KINDS = (RECIPE, SIZE, RUN)

# Papers the recipe values come from (cited in field metadata and presets).
SEQGAN = "SeqGAN, Yu et al. 2017 (and its code)"
MALIGAN = "MaliGAN, Che et al. 2017"
SCRATCHGAN = "ScratchGAN, de Masson d'Autume et al. 2019"
MASKGAN = "MaskGAN, Fedus et al. 2018 (and its code)"
SB3 = "Stable-Baselines3 defaults"

Check = Callable[[Any], Optional[str]]  # None when the value is fine, else what is accepted


def at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"a value >= {lo}"


def positive(v: Any) -> Optional[str]:
    return None if v > 0 and math.isfinite(v) else "a finite value > 0"


def nonnegative(v: Any) -> Optional[str]:
    return None if v >= 0 and math.isfinite(v) else "a finite value >= 0"


def unit(v: Any) -> Optional[str]:
    return None if 0 <= v <= 1 else "a value in [0, 1]"


def unit_open(v: Any) -> Optional[str]:
    return None if 0 <= v < 1 else "a value in [0, 1)"


def not_data_sized(v: Any) -> Optional[str]:
    """A discriminator's options may not set the sizes the data gives it."""
    taken = sorted({"max_length", "vocab_size", "num_classes"} & set(v))
    return f"options other than {', '.join(taken)} (the data sets them)" if taken else None


def param(default: Any, help: str, *, kind: str = RECIPE, check: Optional[Check] = None,
          source: Optional[str] = None, scale_with: Optional[str] = None) -> Any:
    """A config field: ``default``, one line of ``help``, its ``kind``, an optional value check
    (applied to non-None values), the paper of a recipe default, and for a schedule period the
    size field it scales with under a budget."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    meta = {"help": help, "kind": kind, "check": check, "source": source, "scale_with": scale_with}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A configuration value or key that is refused; the message names the field."""


# ------------------------------------------------------------------------------ field types
def field_types(cls: type) -> Dict[str, Any]:
    """Field name -> its type (the resolved annotation) of a config class."""
    return typing.get_type_hints(cls)


def fields_of(cls: Any) -> Dict[str, dataclasses.Field]:
    """The config fields of a config class (or instance), by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls)}


def _union_args(tp: Any) -> Optional[Tuple[Any, ...]]:
    if typing.get_origin(tp) is Union or isinstance(tp, types.UnionType):
        return typing.get_args(tp)
    return None


def type_name(tp: Any) -> str:
    """A short readable name of a field type, for help and errors."""
    args = _union_args(tp)
    if args is not None:
        return " or ".join("None" if a is type(None) else type_name(a) for a in args)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin in (dict, Dict):
        return "a JSON object"
    if origin in (list, List):
        return "a JSON list"
    if tp is Any:
        return "any value"
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp: Any, value: Any) -> Any:
    """``value`` as type ``tp`` (an int for a float field, 64.0 for an int field), or ConfigError."""
    if tp is Any:
        return value
    args = _union_args(tp)
    if args is not None:
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(name, a, value)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{name}: expected {type_name(tp)}, got {value!r}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{name}: expected {type_name(tp)}, got {value!r}{suggest(value, typing.get_args(tp))}")
    if origin in (dict, Dict):
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{name}: expected a JSON object, got {value!r}")
    if origin in (list, List):
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp) or (Any,)
            return [coerce(name, item, v) for v in value]
        raise ConfigError(f"{name}: expected a JSON list, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{name}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})")


def parse_text(name: str, tp: Any, text: str) -> Any:
    """A command-line string as a value of type ``tp`` (JSON for numbers, lists and objects, or
    ``a,b`` for a list; ``none``/``null`` for None; plain text for strings), then :func:`coerce`."""
    args = _union_args(tp) or (tp,)
    if type(None) in args and text.strip().lower() in ("none", "null"):
        return None
    if str in args or tp is Any or (typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in typing.get_args(tp))):
        try:
            value = json.loads(text)
            return coerce(name, tp, value)
        except (json.JSONDecodeError, ConfigError):
            return coerce(name, tp, text)
    if bool in args and text.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return coerce(name, tp, text.strip().lower() in ("true", "yes", "1"))
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if typing.get_origin(tp) in (list, List):  # a,b,c for a list of strings
            return coerce(name, tp, [part.strip() for part in text.split(",") if part.strip()])
        for number in (int, float):  # what Python reads and JSON does not: .05, 5., +1, 1_000
            if number in args:
                try:
                    return coerce(name, tp, number(text))
                except ValueError:
                    pass
        raise ConfigError(f"{name}: expected {type_name(tp)}, got {text!r}") from None
    return coerce(name, tp, value)


def suggest(key: Any, valid: Any) -> str:
    """The hint " (did you mean a or b?)" with the valid names closest to ``key``, or an empty string."""
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def validate(cfg: Any) -> None:
    """Type and value checks of every field of a config instance (ConfigError naming the field)."""
    hints = field_types(type(cfg))
    for name, f in fields_of(cfg).items():
        value = coerce(name, hints[name], getattr(cfg, name))
        object.__setattr__(cfg, name, value)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{name} = {value!r} is invalid: expected {problem}")


C = TypeVar("C")


def replace(cfg: C, **values: Any) -> C:
    """A copy of ``cfg`` with ``values`` (unknown keys refused with suggestions), validated."""
    known = fields_of(cfg)
    for k in values:
        if k not in known:
            raise ConfigError(f"unknown config key {k!r} for {type(cfg).__name__}{suggest(k, known)}")
    out = dataclasses.replace(cfg, **values)  # type: ignore[type-var]
    validate(out)
    return out


def as_dict(cfg: Any) -> Dict[str, Any]:
    """Field name -> value (JSON-ready where the value is; objects are kept as they are)."""
    return {name: getattr(cfg, name) for name in fields_of(cfg)}


def describe(cls: type) -> List[Tuple[str, str, str, Any, str, Optional[str]]]:
    """(name, kind, type name, default, help, paper of the default) of every field of ``cls``."""
    hints = field_types(cls)
    rows = []
    for name, f in fields_of(cls).items():
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory() if callable(factory) else None
        src = f.metadata.get("source")
        rows.append((name, f.metadata["kind"], type_name(hints[name]), default, f.metadata["help"], src))
    return rows


# ------------------------------------------------------------------------------ shared groups of fields
@dataclass
class KLConfig:
    """The KL shaping fields of the agents that take them (the REINFORCE family, ppo, a2c): the
    penalty β (log π - log π_ref) per token, π_ref the generator the RL phase starts from."""

    kl_beta: float = param(0.0, "β of the per-token KL penalty to the generator the RL phase starts from (0: none)",
                           check=nonnegative)
    kl_target: Optional[float] = param(None, "per-token KL that an adaptive β holds, from kl_beta > 0 (None: fixed β)",
                                       check=positive)
    kl_horizon: int = param(10_000, "tokens over which the adaptive β moves by its error (at most 20%)", check=at_least(1))

    def kl_controller(self) -> Optional[KLController]:
        """The β controller of these fields, or None when there is no penalty."""
        from textgym.rewards import KLController  # torch-free config module: imported where used

        if self.kl_beta == 0 and self.kl_target is None:
            return None
        return KLController(self.kl_beta, self.kl_target, self.kl_horizon)


# ------------------------------------------------------------------------------ the run's own fields
@dataclass
class RunConfig:
    """What a run is about and how it is evaluated; shared by every agent (``train.py`` flags)."""

    data: str = param("oracle", "'oracle' (the SeqGAN synthetic benchmark), 'oracle-classes' (two oracles, for class-"
                      "conditional agents), 'coco' (COCO captions from the data "
                      "directory, with their test split) or a text file, one sentence per line", kind=RUN)
    test_data: Optional[str] = param(None, "held-out text file for NLL-test and BLEU (corpora; the oracle and 'coco' "
                                     "have their own)", kind=RUN)
    max_length: Optional[int] = param(None, "tokens per sequence (oracle: 20; corpora: longest sentence + 1, at most "
                                            "max(64, 4 x median + 1))", kind=RUN, check=at_least(1))
    train_size: Optional[int] = param(None, "use the first N training sequences (None: all)", kind=SIZE, check=at_least(1))
    seed: int = param(0, "seeds everything; the same seed on CPU (and thread count) gives the same run", kind=RUN,
                      check=lambda v: None if 0 <= v < 2**40 else "a value in [0, 2**40)")
    eval_every: int = param(5, "evaluate every N iterations (and at the start and the end)", kind=SIZE, check=at_least(1))
    eval_samples: int = param(5000, "generator samples for NLL-oracle, entropy and BLEU (SeqGAN's code scores 10,000 for "
                                    "NLL-oracle; 5,000 halves the evaluation's time)",
                              kind=SIZE, check=at_least(1))
    eval_test_size: Optional[int] = param(None, "held-out sequences for NLL-test (None: all)", kind=SIZE, check=at_least(1))
    bleu_samples: int = param(500, "samples scored by BLEU-4 and Self-BLEU-4 on corpora (Self-BLEU needs two)", kind=SIZE,
                              check=at_least(2))
    init_from: Optional[str] = param(None, "warm start from this run folder's checkpoint (see init_parts); "
                                           "skips MLE pretraining unless mle_epochs is given", kind=RUN)
    init_parts: List[str] = param(["generator"], "what init_from takes: 'generator' and/or 'discriminator' "
                                                 "(optimizers always start fresh)", kind=RUN)
    tf32: bool = param(False, "float32 matrix products in TF32 on CUDA (torch.backends.cuda.matmul.allow_tf32): "
                              "faster, about 3 decimal digits; cuDNN's convolutions keep torch's own setting", kind=RUN)


INIT_PARTS = ("generator", "discriminator")


# ------------------------------------------------------------------------------ presets and budgets
@dataclass(frozen=True)
class Preset:
    """A named recipe: the agent class, its config values (over the class defaults), the paper."""

    name: str
    agent: type
    values: Mapping[str, Any]
    paper: str
    notes: str = ""

    @property
    def config_class(self) -> type:
        return self.agent.Config  # type: ignore[attr-defined]

    def config(self) -> Any:
        """A fresh, validated config instance of this recipe."""
        return replace(self.config_class(), **dict(self.values))


BUDGETS: Dict[str, Dict[str, Optional[int]]] = {
    # caps on size fields (see the module docstring); the fields an agent lacks are ignored
    "smoke": dict(mle_epochs=1, adv_steps=2, d_pretrain_steps=1, d_steps=1, d_epochs=1, d_samples=256, n_rollouts=2,
                  train_size=512, eval_every=1, eval_samples=256, eval_test_size=500, bleu_samples=100, d_heldout=256,
                  d_pretrain_epochs=1, eval_batches=1),
    "default": dict(mle_epochs=12, adv_steps=15, d_pretrain_steps=2, d_steps=1, d_epochs=1, d_samples=2000,
                    n_rollouts=8, eval_every=3, eval_samples=2000),
    "paper": {},
}


@dataclass
class Resolved:
    """A resolved run: the agent's name, the run's and the agent's config, and where each value came from."""

    agent: str
    budget: str
    run: RunConfig
    config: Any
    sources: Dict[str, str]

    def values(self) -> Dict[str, Any]:
        return {**as_dict(self.run), **as_dict(self.config)}

    def to_json(self) -> Dict[str, Any]:
        """The content of ``config.json``: every resolved value and its source."""
        vals = {k: (v if _jsonable(v) else repr(v)) for k, v in self.values().items()}
        return {"format": CONFIG_FORMAT, "agent": self.agent, "budget": self.budget, "values": vals,
                "sources": dict(self.sources)}


CONFIG_FORMAT = "textgym-config-v1"


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except TypeError:
        return False
    return True


def _cap(value: Optional[int], cap: Optional[int]) -> Optional[int]:
    if cap is None:
        return value
    if value is None:
        return cap
    if value == 0:
        return 0  # a phase the recipe turns off stays off
    return min(value, cap)


def all_field_names(config_class: type) -> List[str]:
    return [*fields_of(RunConfig), *fields_of(config_class)]


def resolve(preset: Preset, budget: Union[str, Mapping[str, Optional[int]]] = "paper",
            file_values: Optional[Mapping[str, Any]] = None, explicit: Optional[Mapping[str, Any]] = None) -> Resolved:
    """Class default < preset < budget caps < ``file_values`` (a config file) < ``explicit`` (flags).

    Unknown keys are refused with the closest valid names; every value is type- and
    range-checked (ConfigError naming the field).
    """
    cls = preset.config_class
    run_fields, agent_fields = fields_of(RunConfig), fields_of(cls)
    clash = set(run_fields) & set(agent_fields)
    if clash:
        raise TypeError(f"{cls.__name__} redefines run fields {sorted(clash)}")
    valid = [*run_fields, *agent_fields]
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ConfigError(f"unknown budget {budget!r}; valid: {sorted(BUDGETS)}{suggest(budget, BUDGETS)}")
        budget_name, caps = budget, BUDGETS[budget]
    else:
        budget_name, caps = "custom", dict(budget)
    for layer in (file_values or {}, explicit or {}):  # budget caps may name fields this agent lacks
        for k in layer:
            if k not in valid:
                raise ConfigError(f"unknown config key {k!r} for agent {preset.name!r}{suggest(k, valid)}")
    sources: Dict[str, str] = {k: "default" for k in valid}
    run_vals: Dict[str, Any] = {k: getattr(RunConfig(), k) for k in run_fields}
    agent_default = cls()
    agent_vals: Dict[str, Any] = {k: getattr(agent_default, k) for k in agent_fields}
    for k, v in preset.values.items():
        agent_vals[k] = v
        sources[k] = "preset"
    preset_vals = dict(agent_vals)
    # budget caps on size fields
    for fields, vals in ((run_fields, run_vals), (agent_fields, agent_vals)):
        for k, f in fields.items():
            if f.metadata["kind"] != SIZE or k not in caps or f.metadata.get("scale_with"):
                continue
            new = _cap(vals[k], caps[k])
            if new != vals[k]:
                vals[k] = new
                sources[k] = "budget"
    for layer, label in ((file_values or {}, "config"), (explicit or {}, "flag")):
        for k, v in layer.items():
            (run_vals if k in run_fields else agent_vals)[k] = v
            sources[k] = label
    for k, f in agent_fields.items():  # a schedule period follows its reference field unless set itself
        ref = f.metadata.get("scale_with")
        if not ref or sources[k] in ("config", "flag"):
            continue
        before, after = preset_vals.get(ref), agent_vals.get(ref)
        if isinstance(before, int) and isinstance(after, int) and before > 0 and after != before:
            agent_vals[k] = max(1, round(preset_vals[k] * after / before))
            sources[k] = f"scaled with {ref}"
    if (run_vals["init_from"] and "mle_epochs" in agent_vals and "adv_steps" in agent_vals
            and sources["mle_epochs"] not in ("config", "flag")):
        # warm started: no MLE pretraining unless asked for (an MLE agent's epochs are its training)
        agent_vals["mle_epochs"] = 0
        sources["mle_epochs"] = "init_from"
    run = RunConfig(**run_vals)
    validate(run)
    bad = [p for p in run.init_parts if p not in INIT_PARTS]
    if bad:
        raise ConfigError(f"init_parts: unknown part(s) {bad}; valid: {list(INIT_PARTS)}")
    if run.init_from and not run.init_parts:  # it would skip MLE pretraining and load nothing
        raise ConfigError(f"init_parts is empty, so init_from {run.init_from!r} would load nothing; give the parts to "
                          f"load ({', '.join(INIT_PARTS)}) or leave init_from out")
    cfg = cls(**agent_vals)
    validate(cfg)
    return Resolved(preset.name, budget_name, run, cfg, sources)


DEPRECATED_KEYS = {"reward_scorer": "discriminator"}


def translate_deprecated(values: Mapping[str, Any]) -> Dict[str, Any]:
    """``values`` with the keys of an earlier release renamed (a DeprecationWarning each):
    ``reward_scorer="oracle"`` is ``discriminator="oracle"``; ``reward_scorer="discriminator"``
    is the default and is dropped."""
    out = dict(values)
    if "reward_scorer" in out:
        warnings.warn("the config key 'reward_scorer' is deprecated: use discriminator='oracle' for the oracle's "
                      "likelihood", DeprecationWarning, stacklevel=3)
        value = out.pop("reward_scorer")
        if value not in ("oracle", "discriminator"):
            raise ConfigError(f"reward_scorer (deprecated) was 'oracle' or 'discriminator', got {value!r}; "
                              "use discriminator='oracle' for the oracle's likelihood")
        if value == "oracle":
            out["discriminator"] = "oracle"
    return out


#: the top-level keys of a ``config.json`` (:meth:`Resolved.to_json`); ``sources`` is informative only
CONFIG_KEYS = ("format", "agent", "budget", "values", "sources")


def from_json(blob: Mapping[str, Any], path: str = "config.json") -> Tuple[str, str, Dict[str, Any]]:
    """(agent, budget, values) of a ``config.json``; ConfigError for anything else.

    An unknown top-level key is refused (a typo such as ``"budgte"`` would otherwise be ignored
    and the run would take another budget), and so is a missing or non-string ``budget``: every
    ``config.json`` the driver writes has one, so its absence means a hand-edited file."""
    if not isinstance(blob, Mapping) or blob.get("format") != CONFIG_FORMAT:
        raise ConfigError(f"{path} is not a textgym config (expected \"format\": {CONFIG_FORMAT!r})")
    for k in blob:
        if k not in CONFIG_KEYS:
            raise ConfigError(f"{path}: unknown top-level key {k!r}{suggest(k, CONFIG_KEYS)}; valid: {list(CONFIG_KEYS)}")
    values = blob.get("values")
    if not isinstance(values, Mapping) or not isinstance(blob.get("agent"), str):
        raise ConfigError(f"{path}: expected an \"agent\" name and a \"values\" object")
    if not isinstance(blob.get("budget"), str):
        raise ConfigError(f"{path}: expected a \"budget\" name (one of {sorted(BUDGETS)}), got {blob.get('budget')!r}; "
                          "add it to the file (train.py writes it into every config.json)")
    # a run resolved with a mapping of caps (benchmarks) records "custom"; its values hold every
    # field as resolved, so rerunning it needs no caps: "paper" caps nothing
    budget = "paper" if blob["budget"] == "custom" else blob["budget"]
    return blob["agent"], budget, dict(values)


__all__ = [
    "BUDGETS", "CONFIG_FORMAT", "CONFIG_KEYS", "DEPRECATED_KEYS", "INIT_PARTS", "RECIPE", "RUN", "SIZE", "ConfigError",
    "KLConfig", "Preset", "Resolved", "RunConfig", "all_field_names", "as_dict", "coerce", "describe", "field_types",
    "fields_of", "from_json", "param", "parse_text", "replace", "resolve", "suggest", "translate_deprecated", "validate",
]
