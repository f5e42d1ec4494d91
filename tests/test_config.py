"""Typed configs: presets equal their papers' recipes, budgets cap sizes and never touch a
recipe, explicit values win, and every unknown key, typo, wrong type or senseless value is
refused with the field's name (and the closest valid names)."""
from __future__ import annotations

import dataclasses
import json

import pytest

import agents
import train
from agents.config import BUDGETS, RECIPE, RUN, SIZE, ConfigError, RunConfig, fields_of, resolve
from agents.maligan_mixed import clamp_length

# The recipes, written out independently of agents/__init__.py, with where each comes from.
SEQGAN_RECIPE = dict(  # Yu et al. 2017 and its code: generator Adam 0.01, batch 64, grad clip 5.0, LSTM 32/32,
    batch_size=64, mle_lr=0.01, gen_lr=0.01, grad_clip=5.0, emb_dim=32, hidden_dim=32, g_steps=1,
    discriminator="cnn", d_lr=1e-4,  # CNN discriminator, Adam 1e-4
)
SEQGAN_SIZES = dict(mle_epochs=120, adv_steps=200, d_pretrain_steps=50, d_steps=5, d_epochs=3, d_samples=10_000)
RECIPES = {
    # SeqGAN (Yu et al. 2017, Algorithm 1 and the authors' code): 16 rollouts by the delayed
    # policy beta <- 0.8 beta + 0.2 theta, reward D(Y), no baseline.
    "seqgan": {**SEQGAN_RECIPE, **SEQGAN_SIZES, "reward": "mc", "transform": "prob", "n_rollouts": 16, "gamma": 1.0,
               "baseline": "none", "rollout_rate": 0.8, "rollout_update": "mix"},
    # MaliGAN-basic (Che et al. 2017, Algorithm 1): normalized r_D = D/(1-D) as a terminal
    # reward with the mean baseline; SeqGAN's schedule (the paper gives none).
    "maligan": {**SEQGAN_RECIPE, **SEQGAN_SIZES, "reward": "terminal", "transform": "maligan", "gamma": 1.0,
                "baseline": "rise"},  # "b rises slowly from 0 towards 1"
    # MaliGAN Algorithm 2 (Che et al. 2017): N decreases by K = 2, m = 8 samples per prefix.
    "maligan-mixed": {**SEQGAN_RECIPE, **SEQGAN_SIZES, "mixed_K": 2, "mixed_m": 8, "mixed_every": 10,
                      "baseline": "mean"},
    # ScratchGAN (de Masson d'Autume et al. 2019): no pretraining, batch 512, generator Adam
    # 9.59e-5 with beta1 0.5, discount 0.23, EMA baseline 0.08, reward 2D - 1 per prefix from an
    # LSTM discriminator trained at 9.38e-3 (Adam beta1 0.5, L2 1e-6) once per generator update
    # on 512 real + 512 generated sequences (the code's flags: num_disc_updates 1, l2_disc 1e-6).
    "scratchgan": {"mle_epochs": 0, "d_pretrain_steps": 0, "batch_size": 512, "gen_lr": 9.59e-5, "adam_beta1": 0.5,
                   "reward": "dense", "transform": "centered_prob", "gamma": 0.23, "baseline": "ema",
                   "baseline_decay": 0.08, "discriminator": "rnn", "d_lr": 9.38e-3, "d_adam_beta1": 0.5,
                   "d_weight_decay": 1e-6, "d_samples": 512, "d_batch_size": 1024, "d_steps": 1, "d_epochs": 1,
                   "g_steps": 1},
    # MaskGAN (Fedus et al. 2018; the GAN-mode command of the authors' code): batch 128, generator
    # lr 3.8877e-5, discount 0.89072, discriminator lr 5e-4 with 2 updates per generator update,
    # reward log D per token from a per-prefix discriminator.
    "maskgan": {"gen_lr": 3.8877e-5, "gamma": 0.89072, "d_lr": 5e-4, "d_steps": 2, "transform": "log",
                "discriminator": "rnn", "batch_size": 128, "adv_clip": 5.0},
    "mle": {"batch_size": 64, "mle_lr": 0.01, "grad_clip": 5.0, "mle_epochs": 120},
    # Stable-Baselines3's own defaults: PPO lr 3e-4, A2C lr 7e-4.
    "ppo": {"learning_rate": 3e-4},
    "a2c": {"learning_rate": 7e-4},
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_preset_is_its_paper_recipe(name):
    preset = agents.preset(name)
    assert preset.paper
    cfg = resolve(preset, "paper").config
    for k, want in RECIPES[name].items():
        assert getattr(cfg, k) == want, (name, k, getattr(cfg, k), want)


@pytest.mark.parametrize("budget", sorted(BUDGETS))
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_budget_never_changes_a_recipe_field_and_only_lowers_sizes(name, budget):
    preset = agents.preset(name)
    paper, capped = resolve(preset, "paper"), resolve(preset, budget)
    for f in dataclasses.fields(paper.config):
        a, b = getattr(paper.config, f.name), getattr(capped.config, f.name)
        if f.metadata["kind"] == RECIPE:
            assert a == b, (name, budget, f.name)
        elif f.metadata["kind"] == SIZE and isinstance(a, int):
            assert b <= a and (a > 0 or b == 0), (name, budget, f.name, a, b)
            if f.metadata.get("scale_with") is None and f.name in BUDGETS[budget]:
                assert b == min(a, BUDGETS[budget][f.name]) or a == 0


def test_smoke_caps_every_size_field_that_does_not_scale_with_another():
    """smoke is seconds: a size field it left uncapped (the 1,000 held-out sequences scored every
    round, SentiGAN's D pretraining epochs, CatGAN's fitness batches) kept its full size."""
    sizes = {f.name for p in agents.PRESETS.values() for f in dataclasses.fields(p.config_class)
             if f.metadata["kind"] == SIZE and f.metadata.get("scale_with") is None}
    sizes |= {f.name for f in dataclasses.fields(RunConfig) if f.metadata.get("kind") == SIZE}
    assert sizes - set(BUDGETS["smoke"]) == set()


def test_scratchgan_default_budget_keeps_its_recipe():
    """The old driver merged the budget over the preset: batch 64, 12 MLE epochs, 2 D pretraining rounds."""
    r = resolve(agents.preset("scratchgan"), "default")
    c = r.config
    assert (c.batch_size, c.mle_epochs, c.d_pretrain_steps, c.d_steps, c.d_epochs) == (512, 0, 0, 1, 1)
    assert c.adv_steps == BUDGETS["default"]["adv_steps"] and r.sources["adv_steps"] == "budget"
    assert r.sources["batch_size"] == "preset"


def test_maligan_mixed_schedule_is_scaled_to_the_budget():
    """The clamp period follows adv_steps, so the whole schedule (N = T ... 0) fits any run of at
    least T / K steps (the old driver ran 10 pure-MLE steps of 15 under the default budget)."""
    T = 20
    for budget in ("default", "paper"):
        c = resolve(agents.preset("maligan-mixed"), budget).config
        assert c.adv_steps >= T // c.mixed_K
        assert clamp_length(c.adv_steps - 1, T, c.mixed_K, c.mixed_every) == 0, (budget, c)
        assert clamp_length(0, T, c.mixed_K, c.mixed_every) == T
    c = resolve(agents.preset("maligan-mixed"), "smoke").config
    assert c.mixed_every == 1  # as fast as the schedule goes
    explicit = resolve(agents.preset("maligan-mixed"), "default", explicit={"mixed_every": 4})
    assert explicit.config.mixed_every == 4 and explicit.sources["mixed_every"] == "flag"


def test_explicit_values_win_and_sources_say_where_each_value_came_from():
    r = resolve(agents.preset("seqgan"), "default", file_values={"gen_lr": 0.002, "seed": 3},
                explicit={"batch_size": 32, "adv_steps": 500, "seed": 4})
    assert r.config.batch_size == 32 and r.sources["batch_size"] == "flag"      # a recipe field, set explicitly
    assert r.config.adv_steps == 500 and r.sources["adv_steps"] == "flag"       # above the budget's cap
    assert r.config.gen_lr == 0.002 and r.sources["gen_lr"] == "config"
    assert r.run.seed == 4 and r.sources["seed"] == "flag"
    assert r.sources["mle_epochs"] == "budget" and r.sources["rollout_rate"] == "preset"
    assert r.sources["temperature"] == "default"
    blob = r.to_json()
    assert set(blob["values"]) == set(blob["sources"]) == set(fields_of(RunConfig)) | set(fields_of(r.config))
    assert json.loads(json.dumps(blob)) == blob


def test_warm_start_skips_mle_unless_asked():
    r = resolve(agents.preset("seqgan"), "smoke", explicit={"init_from": "runs/x"})
    assert r.config.mle_epochs == 0 and r.sources["mle_epochs"] == "init_from"
    r = resolve(agents.preset("seqgan"), "smoke", explicit={"init_from": "runs/x", "mle_epochs": 2})
    assert r.config.mle_epochs == 2
    for agent in ("mle", "mle-infill"):  # MLE's epochs are the whole run: a warm start continues them (it did nothing)
        r = resolve(agents.preset(agent), "default", explicit={"init_from": "runs/x"})
        assert r.config.mle_epochs == 12 and r.sources["mle_epochs"] == "budget"


@pytest.mark.parametrize("explicit,match", [
    ({"gen_lrr": 0.001}, r"unknown config key 'gen_lrr'.*did you mean gen_lr"),
    ({"batchsize": 3}, r"did you mean batch_size"),
    ({"gen_lr": "fast"}, r"gen_lr: expected float"),
    ({"batch_size": 2.5}, r"batch_size: expected int"),
    ({"batch_size": True}, r"batch_size: expected int"),
    ({"batch_size": 0}, r"batch_size = 0 is invalid"),
    ({"mle_epochs": -1}, r"mle_epochs = -1 is invalid"),
    ({"d_samples": 0}, r"d_samples = 0 is invalid"),
    ({"gamma": 1.5}, r"gamma = 1.5 is invalid.*\[0, 1\]"),
    ({"rollout_rate": -0.1}, r"rollout_rate = -0.1 is invalid"),
    ({"adam_beta1": 1.0}, r"adam_beta1 = 1.0 is invalid"),
    ({"baseline": "median"}, r"baseline: expected one of .*did you mean mean"),
    ({"reward": "sparse"}, r"reward: expected one of"),
    ({"transform": "cube"}, r"transform = 'cube' is invalid"),
    ({"eval_samples": 0}, r"eval_samples = 0 is invalid"),
    ({"init_parts": ["optimizer"]}, r"init_parts"),
    ({"discriminator": ["cnn"]}, r"discriminator = \['cnn'\] is invalid: expected one of"),
    ({"discriminator": 1}, r"discriminator = 1 is invalid: expected one of"),
    ({"kl_target": float("inf")}, r"kl_target = inf is invalid: expected a finite value > 0"),
    ({"discriminator_options": {"max_length": 5}},  # was a TypeError from discriminators.make()
     r"discriminator_options = .* is invalid: expected options other than max_length \(the data sets them\)"),
    ({"init_from": "runs/mle", "init_parts": []}, r"init_parts is empty, so init_from 'runs/mle' would load nothing"),
])
def test_bad_keys_types_and_values_are_refused_naming_the_field(explicit, match):
    with pytest.raises(ConfigError, match=match):
        resolve(agents.preset("seqgan"), "default", explicit=explicit)


def test_every_numeric_field_of_every_agent_is_checked_and_keeps_its_bases_check():
    """A field redeclared in a subclass (a paper's default) without ``check=`` dropped its base's:
    catgan and sentigan took gen_lr = inf and ran until it diverged."""
    from typing import Optional

    from agents.config import field_types

    unchecked = []
    for name in agents.available():
        cls = agents.preset(name).config_class
        hints = field_types(cls)
        for k, f in fields_of(cls).items():
            numeric = hints[k] in (int, float, Optional[int], Optional[float])
            based = any(dataclasses.is_dataclass(b) and k in fields_of(b) and fields_of(b)[k].metadata.get("check")
                        for b in cls.__mro__[1:])
            if f.metadata.get("check") is None and (numeric or based):
                unchecked.append(f"{name}.{k}")
    assert unchecked == []
    for agent in ("catgan", "sentigan"):
        with pytest.raises(ConfigError, match="gen_lr = inf is invalid: expected a finite value > 0"):
            resolve(agents.preset(agent), "smoke", explicit={"gen_lr": float("inf")})
    with pytest.raises(ConfigError, match=r"d_dropout = 1.0 is invalid: expected a value in \[0, 1\)"):
        resolve(agents.preset("catgan"), "smoke", explicit={"d_dropout": 1.0})
    with pytest.raises(ConfigError, match=r"seed = 1152921504606846976 is invalid: expected a value in \[0, 2\*\*40\)"):
        resolve(agents.preset("mle"), "smoke", explicit={"seed": 2**60})  # overflowed at the first evaluation
    assert resolve(agents.preset("mle"), "smoke", explicit={"seed": 2**32}).run.seed == 2**32


def test_unknown_keys_are_refused_by_agents_make_too(tmp_path):
    with pytest.raises(ValueError, match="mle_lrr.*did you mean mle_lr"):
        agents.make("mle", "oracle", {"mle_lrr": 0.1})
    with pytest.raises(ValueError, match="unknown agent 'seqgn' \\(did you mean seqgan"):
        agents.preset("seqgn")


@pytest.mark.parametrize("args,match", [
    (["--agent", "seqgan", "--set", "gen_lrr=0.001"], "unknown config key 'gen_lrr' for agent 'seqgan' (did you mean gen_lr"),
    (["--agent", "mle", "--gen-lr", "0.001"], "unknown option '--gen-lr' for agent 'mle'"),
    (["--agent", "seqgan", "--gen-lrr", "0.001"], "did you mean --gen-lr"),
    (["--agent", "seqgan", "--batch-size", "many"], "batch_size: expected int, got 'many'"),
    (["--agent", "seqgan", "--gamma", "2"], "gamma = 2.0 is invalid"),
    (["--agent", "seqgan", "--budget", "huge"], "unknown budget 'huge'"),
    (["--agent", "seqgan", "--set", "oops"], "KEY=VALUE"),
    (["--agent", "gan9000"], "valid agents"),
    # a flag and --set for one key: --set used to win whatever the order
    (["--agent", "ppo", "--set", "learning_rate=0.001", "--learning-rate", "0.5"], "learning_rate is given twice"),
    (["--agent", "ppo", "--set", "learning_rate=0.001", "--set", "learning_rate=0.5"], "learning_rate is given twice"),
])
def test_the_command_line_refuses_before_anything_runs(tmp_path, capsys, args, match):
    assert train.main([*args, "--out", str(tmp_path / "run")]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_help_lists_the_agents_fields_with_help_and_values(capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--agent", "scratchgan", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--batch-size", "--gen-lr", "--baseline-decay", "--d-pretrain-steps", "--init-from", "--eval-samples"):
        assert flag in out, flag
    assert "512 from the scratchgan preset" in out
    assert "--mixed-k" not in out  # another agent's field


def test_every_field_is_documented_and_typed():
    classes = {p.config_class for p in agents.PRESETS.values()} | {RunConfig}
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), (cls.__name__, f.name)
            assert f.metadata.get("kind") in (RECIPE, SIZE, RUN), (cls.__name__, f.name)


def test_names_of_the_earlier_release_still_work_with_a_warning(small_oracle_data):
    with pytest.warns(DeprecationWarning, match="reward_scorer"):
        a = agents.make("seqgan", small_oracle_data, {"reward_scorer": "oracle", "mle_epochs": 0})
    assert a.config.discriminator == "oracle" and a.discriminator is None
    # a misspelled value was dropped without a word; an agent without a discriminator raised KeyError
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="got 'orcale'"):
        agents.make("seqgan", small_oracle_data, {"reward_scorer": "orcale"})
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="agent 'mle' has no discriminator"):
        train.parse(["--agent", "mle", "--set", "reward_scorer=oracle"])
    with pytest.warns(DeprecationWarning, match="PRESETS"):
        old = agents.AGENTS
    assert old["seqgan"][0] is agents.ReinforceAgent and old["seqgan"][1]["n_rollouts"] == 16


@pytest.mark.parametrize("args,match", [
    (["--train-size", "-5"], "train_size = -5 is invalid"),
    (["--train-size", "0"], "train_size = 0 is invalid"),
    (["--eval-samples", "0"], "eval_samples = 0 is invalid"),
    (["--eval-every", "-3"], "eval_every = -3 is invalid"),
    (["--max-length", "-3"], "max_length = -3 is invalid"),
    (["--set", "eval_every=abc"], "eval_every: expected int, got 'abc'"),
])
def test_run_sizes_are_checked_before_anything_runs(tmp_path, capsys, args, match):
    assert train.main(["--agent", "mle", "--budget", "smoke", *args, "--out", str(tmp_path / "run")]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_command_line_values_parse_by_field_type():
    from typing import Any, Dict, List, Optional

    from agents.config import parse_text

    assert parse_text("init_parts", List[str], "generator,discriminator") == ["generator", "discriminator"]
    assert parse_text("init_parts", List[str], '["generator"]') == ["generator"]
    assert parse_text("test_data", Optional[str], "none") is None
    assert parse_text("data", str, "123") == "123"
    assert parse_text("gen_lr", float, "1e-3") == 0.001 and parse_text("batch_size", int, "64.0") == 64
    assert parse_text("opts", Dict[str, Any], '{"size": "small"}') == {"size": "small"}
    with pytest.raises(ConfigError, match="batch_size: expected int"):
        parse_text("batch_size", int, "6.5")
    # numbers as Python writes them, which JSON does not read
    assert parse_text("kl_beta", float, ".05") == 0.05 and parse_text("kl_beta", float, "5.") == 5.0
    assert parse_text("batch_size", int, "+64") == 64 and parse_text("adv_steps", int, "1_000") == 1000
    assert parse_text("kl_target", Optional[float], ".5") == 0.5
    with pytest.raises(ConfigError, match="batch_size: expected int"):
        parse_text("batch_size", int, "5.")


@pytest.mark.parametrize("change,match", [
    ({"budgte": "smoke"}, "unknown top-level key 'budgte' (did you mean budget?)"),
    ({"budget": None}, "expected a \"budget\" name"),
    ({"budget": 3}, "expected a \"budget\" name"),
])
def test_a_config_file_with_an_unknown_top_level_key_or_no_budget_is_refused(tmp_path, capsys, change, match):
    """A typo in a config.json's top-level key was ignored, and the run took the paper budget instead."""
    blob = resolve(agents.preset("mle"), "smoke").to_json()
    del blob["budget"]
    blob.update({k: v for k, v in change.items() if v is not None})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(blob))
    assert train.main(["--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert match in err and str(path) in err
    assert not (tmp_path / "run").exists()


def test_a_config_json_of_a_run_with_custom_caps_reruns_to_the_same_values():
    from agents.config import from_json

    first = resolve(agents.preset("seqgan"), {"adv_steps": 3, "mle_epochs": 2})  # caps as a mapping: budget "custom"
    blob = json.loads(json.dumps(first.to_json()))
    assert blob["budget"] == "custom"
    agent, budget, values = from_json(blob)
    again = resolve(agents.preset(agent), budget, file_values=values)
    assert again.values() == first.values() and again.values()["adv_steps"] == 3


@pytest.mark.parametrize("name,explicit", [
    ("seqgan", {"gamma": 0.0, "rollout_rate": 0.0}),  # RolloutCopy: "rate 0 with mix makes β follow θ exactly"
    ("scratchgan", {"baseline_decay": 0.0, "gamma": 1.0}),
    ("seqgan", {"rollout_rate": 1.0, "adam_beta1": 0.0, "grad_clip": 0.0, "n_rollouts": 1, "d_pretrain_steps": 0}),
])
def test_the_ends_of_each_accepted_range_are_accepted(name, explicit):
    """C1 (and the edges of every check kind): [0, 1] holds 0 and 1, [0, 1) holds 0, >= 0 holds 0,
    >= 1 holds 1. The suite tested values outside the ranges only."""
    from agents.config import resolve

    cfg = resolve(agents.preset(name), "smoke", explicit=explicit).config
    assert {k: getattr(cfg, k) for k in explicit} == explicit


@pytest.mark.parametrize("name,field", [("seqgan", "grad_clip"), ("seqgan", "d_weight_decay"), ("maskgan", "adv_clip")])
def test_an_infinite_value_of_a_nonnegative_field_is_refused(name, field):
    """C2: 'a finite value >= 0' refuses inf (d_weight_decay = inf makes every discriminator weight
    NaN at the first update); only the 'positive' fields' inf was tested."""
    from agents.config import ConfigError, resolve

    with pytest.raises(ConfigError, match=rf"{field} = inf is invalid: expected a finite value >= 0"):
        resolve(agents.preset(name), "smoke", explicit={field: float("inf")})
