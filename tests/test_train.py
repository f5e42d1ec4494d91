"""train.py and the driver end to end: every agent with the smoke budget, resume equals an
uninterrupted run, config.json reruns the run, warm start from a run folder, refusals."""
from __future__ import annotations

import json
import math
import re
import time

import pytest
import torch

import agents
import train
from agents.checkpoints import _header_sha256


def run(tmp_path, *args: str, name: str = "run") -> int:
    return train.main([*args, "--out", str(tmp_path / name), "--quiet"])


def rows(folder):
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("agent", agents.available())
def test_every_agent_runs_with_the_smoke_budget(tmp_path, agent, oracle_data):
    labelled = agent in ("sentigan", "catgan")  # class-conditional: the two-oracle benchmark
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", *(["--data", "oracle-classes"] if labelled else [])) == 0
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["agent"] == agent and summary["iterations"] >= 1
    test_metric = "nll_infill" if agent.endswith("-infill") else "nll_test"  # in-filling: NLL of the true blanks
    assert math.isfinite(summary["metrics"]["nll_oracle"]) and math.isfinite(summary["metrics"][test_metric])
    assert (folder / "checkpoint.pt").is_file() and (folder / "config.json").is_file()
    assert (folder / "metrics.csv").read_text().startswith("iteration,")
    assert any((folder / "samples").iterdir()) and any((folder / "tb").iterdir())
    assert len(rows(folder)) == summary["iterations"] + 1  # + the untrained generator's row


@pytest.mark.parametrize("agent,cut,extra", [
    ("seqgan", 3, []),                                   # cut between adversarial steps
    ("ppo", 1, []),
    ("ppo", 1, ["--d-every", "2", "--adv-steps", "3"]),  # cut while sequences wait for the next D retraining
    ("ppo", 2, ["--d-every", "2", "--adv-steps", "3"]),  # cut right after a D retraining: the next row has no d_*
])
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path, agent, cut, extra, oracle_data):
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", *extra, name="full") == 0
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", *extra, "--stop-after", str(cut), name="cut") == 0
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", *extra, "--resume", name="cut") == 0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    cut = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert full["metrics"] == cut["metrics"]
    assert rows(tmp_path / "full") == rows(tmp_path / "cut")
    assert tb_scalars(tmp_path / "full") == tb_scalars(tmp_path / "cut")  # the resume dropped the last saved step's


def tb_scalars(folder):
    """Every TensorBoard scalar of a run folder as {tag: [(step, value), ...]}, as TensorBoard reads
    them (events from an earlier session's purged steps on dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if tag != "time"}


def test_refusals(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--discriminator", "lstm9") == 2
    assert "'oracle'" in capsys.readouterr().err  # every valid name, the oracle's likelihood included
    assert run(tmp_path, "--agent", "ppo", "--budget", "smoke", "--discriminator", "rnm") == 2
    assert "did you mean rnn" in capsys.readouterr().err
    # dense rewards need per-prefix scores, which the CNN has not
    assert run(tmp_path, "--agent", "scratchgan", "--budget", "smoke", "--discriminator", "cnn") == 2
    assert "prefix" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_checkpoints_of_other_configurations_and_corrupt_ones_are_refused(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--stop-after", "1") == 0
    capsys.readouterr()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 2  # exists: needs --resume
    assert "--resume" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--seed", "1", "--resume") == 2
    assert re.search("another configuration.*seed", capsys.readouterr().err)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    outer = torch.load(ckpt, weights_only=True)  # a header value changed: the body's checksum does not see it
    torch.save({**outer, "header": {**outer["header"], "metrics_rows": 1}}, ckpt)
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume") == 2
    assert "corrupt (its header's checksum does not match)" in capsys.readouterr().err
    ckpt.write_bytes(data[: len(data) // 2])
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume") == 2
    assert "corrupt" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume", name="elsewhere") == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_a_finished_run_whose_checkpoint_is_gone_is_neither_overwritten_nor_reported_for_another(tmp_path, oracle_data,
                                                                                                 capsys):
    """A start into a finished run's folder whose checkpoint was deleted cut its metrics to the new
    run's; a resume of that new run then returned the old run's summary as its own."""
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 0
    folder = tmp_path / "run"
    (folder / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    capsys.readouterr()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--seed", "5") == 2
    assert "holds a finished run (summary.json) whose checkpoint is gone" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, "--stop-after", "1", name="cut") == 0
    (tmp_path / "cut" / "summary.json").write_bytes(before["summary.json"])  # a finished run's summary beside it
    assert run(tmp_path, *args, "--resume", name="cut") == 2
    assert "summary.json does not match the checkpoint (its iterations or configuration differ)" in capsys.readouterr().err
    (tmp_path / "cut" / "summary.json").unlink()
    assert run(tmp_path, *args, "--resume", name="cut") == 0  # every finished run's own summary is accepted
    assert run(tmp_path, *args, "--resume", name="cut") == 0 and "nothing to do" in capsys.readouterr().out


def test_a_metrics_line_that_is_not_utf8_is_named_on_resume(tmp_path, oracle_data, capsys):
    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, "--stop-after", "2") == 0
    jsonl = tmp_path / "run" / "metrics.jsonl"
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(lines[0] + b'{"iteration": \xff1}\n' + b"".join(lines[2:]))
    capsys.readouterr()
    assert run(tmp_path, *args, "--resume") == 2  # was a UnicodeDecodeError traceback
    assert "metrics.jsonl line 2 is corrupt" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_made_is_named(tmp_path, capsys, monkeypatch):
    """--out below a file, or where the system refuses a folder: an error, not a traceback."""
    (tmp_path / "a.json").write_text("{}")
    assert train.main(["--agent", "mle", "--budget", "smoke", "--out", str(tmp_path / "a.json" / "sub"), "--quiet"]) == 2
    assert f"lies below a file ({tmp_path / 'a.json'})" in capsys.readouterr().err
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert train.main(["--agent", "mle", "--budget", "smoke", "--out", str(tmp_path / "x" / "y"), "--quiet"]) == 2
    assert f"cannot create the run folder {tmp_path / 'x' / 'y'}: Permission denied" in capsys.readouterr().err


def test_a_checkpoint_whose_body_is_bytes_still_resumes(tmp_path, oracle_data):
    """Checkpoints written before the body became a byte tensor hold it as a bytes object."""
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", name="full") == 0
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--stop-after", "1") == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    outer = torch.load(ckpt, weights_only=True)
    assert isinstance(outer["body"], torch.Tensor) and outer["body"].dtype == torch.uint8
    torch.save({"header": outer["header"], "body": outer["body"].numpy().tobytes()}, ckpt)
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume") == 0
    assert rows(tmp_path / "run") == rows(tmp_path / "full")


def test_a_finished_run_is_left_untouched_by_resume(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 0
    folder = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume") == 0
    assert "finished run" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert json.loads((folder / "summary.json").read_text())["metrics"]["nll_oracle"] > 0


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, oracle_data, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine" and not (tmp_path / "run" / "config.json").exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt"]  # no lock file left behind


def test_config_json_reruns_the_same_run(tmp_path, oracle_data):
    assert run(tmp_path, "--agent", "maligan-mixed", "--budget", "smoke", "--seed", "3", "--gen-lr", "0.02", name="a") == 0
    blob = json.loads((tmp_path / "a" / "config.json").read_text())
    assert blob["values"]["gen_lr"] == 0.02 and blob["sources"]["gen_lr"] == "flag"
    assert blob["sources"]["batch_size"] == "preset" and blob["sources"]["adv_steps"] == "budget"
    assert run(tmp_path, "--config", str(tmp_path / "a" / "config.json"), name="b") == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["metrics"] == b["metrics"] and a["config"] == b["config"]
    assert rows(tmp_path / "a") == rows(tmp_path / "b")


def test_a_budget_given_with_a_config_file_replaces_the_caps_of_the_files_budget(tmp_path):
    """The file's own values stay (a flag's gen_lr), the values its budget set follow the new one
    (they silently kept the file's smoke sizes while config.json recorded the new budget)."""
    from agents.config import resolve

    resolved = resolve(agents.preset("seqgan"), "smoke", explicit={"gen_lr": 0.02})
    (tmp_path / "config.json").write_text(json.dumps(resolved.to_json()))
    again, _ = train.parse(["--config", str(tmp_path / "config.json")])
    assert again.config.adv_steps == 2 and again.config.gen_lr == 0.02  # the file as it is
    for budget in ("default", "paper"):  # as if resolved under that budget with the file's own flag
        swapped, _ = train.parse(["--config", str(tmp_path / "config.json"), "--budget", budget])
        direct = resolve(agents.preset("seqgan"), budget, explicit={"gen_lr": 0.02})
        assert swapped.to_json()["values"] == direct.to_json()["values"] and swapped.budget == budget
    # a run from the file keeps the file's record of each value's origin, so the second generation
    # swaps its budget too (every value used to be recorded as "config", i.e. chosen)
    assert again.sources == {**resolved.sources, "gen_lr": "config"}  # the file's flag: a choice the file holds
    (tmp_path / "again.json").write_text(json.dumps(again.to_json()))
    swapped, _ = train.parse(["--config", str(tmp_path / "again.json"), "--budget", "default"])
    assert swapped.to_json()["values"] == resolve(agents.preset("seqgan"), "default",
                                                  explicit={"gen_lr": 0.02}).to_json()["values"]
    flagged, _ = train.parse(["--config", str(tmp_path / "config.json"), "--adv-steps", "3"])
    assert flagged.sources["adv_steps"] == "flag" and flagged.sources["eval_samples"] == "budget"


def test_warm_start_takes_the_source_runs_generator(tmp_path, oracle_data):
    from agents.checkpoints import read_checkpoint

    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", name="mle") == 0
    _, source = read_checkpoint(tmp_path / "mle" / "checkpoint.pt")
    import agents
    from agents.config import resolve
    from agents.driver import build_agent, load_data, warm_start

    resolved = resolve(agents.preset("seqgan"), "smoke", explicit={"init_from": str(tmp_path / "mle")})
    assert resolved.config.mle_epochs == 0
    data = load_data(resolved.run)
    agent = build_agent(resolved, data, "cpu")
    taken = warm_start(agent, resolved.run)
    assert taken["source_agent"] == "mle" and taken["init_parts"] == ["generator"]
    for k, v in agent.generator.state_dict().items():
        assert torch.equal(v, source["generator"][k]), k
    # a finished warm-started run records where it came from; its first evaluation is the source's generator
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", str(tmp_path / "mle"), name="w2") == 0
    summary = json.loads((tmp_path / "w2" / "summary.json").read_text())
    assert summary["init_from"] == str(tmp_path / "mle") and summary["config"]["mle_epochs"] == 0
    first = rows(tmp_path / "w2")[0]
    mle_last = rows(tmp_path / "mle")[-1]
    assert first["nll_test"] == pytest.approx(mle_last["nll_test"], rel=1e-6)


def test_a_ppo_run_of_the_generator_policy_warm_starts_another_agent_with_its_actor(tmp_path, oracle_data):
    """Its checkpoint holds the SB3 policy, whose actor is the LSTM generator ("the source run
    (agent None) has no LSTM generator" before)."""
    from agents.checkpoints import read_checkpoint
    from agents.driver import build_agent, load_data, warm_start

    assert run(tmp_path, "--agent", "ppo", "--budget", "smoke", name="ppo") == 0
    _, source = read_checkpoint(tmp_path / "ppo" / "checkpoint.pt")
    resolved = agents.config.resolve(agents.preset("mle"), "smoke", explicit={"init_from": str(tmp_path / "ppo")})
    agent = build_agent(resolved, load_data(resolved.run), "cpu")
    assert warm_start(agent, resolved.run)["source_agent"] == "ppo"
    for k, v in agent.generator.state_dict().items():
        assert torch.equal(v, source["policy"][f"generator.{k}"]), k


def test_warm_start_refusals(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", str(tmp_path / "nothing")) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", name="mle") == 0
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", str(tmp_path / "mle" / "generator.pt"),
               name="file") == 2
    assert "is a generator file, not a checkpoint: give the run folder" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", str(tmp_path / "mle"),
               "--hidden-dim", "16", name="bad") == 2
    err = capsys.readouterr().err  # which weights differ, and how (torch's message was cut to its first line)
    assert "(a mle run): the source run's generator does not fit" in err
    assert "lstm.weight_hh_l0 is (128, 32) there, (64, 16) here" in err
    assert f"give it the source run's, which its {tmp_path / 'mle' / 'config.json'} records" in err  # where sizes come from
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", str(tmp_path / "mle"),
               "--init-parts", '["discriminator"]', name="bad2") == 2
    assert "no trained discriminator" in capsys.readouterr().err


def test_generator_file_evaluates(tmp_path, oracle_data, capsys):
    from textgym.evaluate import main as evaluate_main

    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 0
    assert evaluate_main(["--generator", str(tmp_path / "run" / "generator.pt"), "--n-samples", "200",
                          "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result["nll_oracle"] > 5.7 and abs(result["nll_oracle"] - summary["metrics"]["nll_oracle"]) < 0.5
    # the file holds the run's final generator, weight for weight
    from agents.checkpoints import read_checkpoint
    from textgym.evaluate import load_generator

    loaded, _ = load_generator(tmp_path / "run" / "generator.pt")
    _, state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    trained = state["generator"]
    assert trained.keys() == loaded.state_dict().keys()
    assert all(torch.equal(trained[k], v) for k, v in loaded.state_dict().items())


def test_corpus_run_reports_bleu_and_self_bleu(tmp_path):
    """A text corpus end to end: vocabulary from the training file, NLL-test, BLEU-4 and Self-BLEU-4."""
    from conftest import need_data

    train_lines = need_data("coco", "image_coco.txt").read_text(encoding="utf-8").splitlines()[:600]
    test_lines = need_data("coco", "test_coco.txt").read_text(encoding="utf-8").splitlines()[:200]
    (tmp_path / "train.txt").write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", str(tmp_path / "train.txt"),
               "--test-data", str(tmp_path / "test.txt"), "--eval-samples", "100") == 0
    metrics = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]
    assert 0.0 <= metrics["bleu4"] <= 1.0 and 0.0 <= metrics["self_bleu4"] <= 1.0
    assert math.isfinite(metrics["nll_test"]) and "nll_oracle" not in metrics
    samples = sorted((tmp_path / "run" / "samples").iterdir())[-1].read_text(encoding="utf-8").splitlines()
    assert samples and all(line.strip() for line in samples)  # decoded words, no empty sentences


def test_resume_reads_the_checkpoint_on_the_cpu_whatever_the_runs_device(tmp_path, oracle_data, monkeypatch):
    """torch.Generator.set_state takes CPU byte tensors only, so a checkpoint mapped onto the run's
    device could not be resumed on a GPU. Without one, a load that lands on another device is
    simulated: whatever torch.load is asked to map onto a torch.device goes to 'meta' instead."""
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--stop-after", "3") == 0
    real_load = torch.load

    def load(f, *args, map_location=None, **kwargs):
        if isinstance(map_location, torch.device):
            map_location = "meta"
        return real_load(f, *args, map_location=map_location, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--resume") == 0


def test_a_checkpoint_from_another_device_type_is_refused_with_the_device_to_use(tmp_path, oracle_data, capsys):
    """A CUDA run's random-number states cannot drive CPU draws (nor the reverse): resuming it
    elsewhere is refused before anything runs, naming the device it needs."""
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--stop-after", "2") == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    outer = torch.load(ckpt, weights_only=True)
    assert outer["header"]["device_type"] == "cpu"
    header = {**outer["header"], "device_type": "cuda"}
    header["header_sha256"] = _header_sha256(header)  # as a CUDA run writes it: a whole header
    torch.save({"header": header, "body": outer["body"]}, ckpt)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--resume") == 2
    assert "--device cuda" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("discriminator,weak", [("constant", True), ("oracle", False)])
def test_a_finished_run_says_when_its_discriminator_was_weak(tmp_path, oracle_data, capsys, discriminator, weak):
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--discriminator", discriminator) == 0
    acc = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"].get("d_heldout_acc")
    out = capsys.readouterr().out
    assert ("notice: the discriminator is weak" in out) == weak, (acc, out)
    assert acc == 0.5 if weak else acc is None  # the oracle needs no held-out check


def test_a_checkpoint_older_than_a_config_field_resumes_at_its_default_only(tmp_path):
    """A field added since a checkpoint was written (absent from its config) is no difference
    while it keeps its default (or its budget's cap of it); set to anything else, the checkpoint
    is refused."""
    from agents.checkpoints import RunError, check_same_config, run_values
    from agents.config import resolve

    resolved = resolve(agents.preset("seqgan"), "smoke")
    old = {k: v for k, v in run_values(resolved).items() if k != "d_precision"}
    check_same_config(tmp_path / "checkpoint.pt", {"config": old}, resolved)
    changed = resolve(agents.preset("seqgan"), "smoke", explicit={"d_precision": "bfloat16"})
    with pytest.raises(RunError, match="another configuration.*d_precision"):
        check_same_config(tmp_path / "checkpoint.pt", {"config": old}, changed)
    with pytest.raises(RunError, match="another configuration.*seed"):
        check_same_config(tmp_path / "checkpoint.pt", {"config": {**old, "seed": 7}}, resolved)
    # a new size field under a budget that caps it (sentigan's d_heldout: 1000, 256 under smoke)
    capped = resolve(agents.preset("sentigan"), "smoke")
    assert capped.sources["d_heldout"] == "budget"
    old = {k: v for k, v in run_values(capped).items() if k != "d_heldout"}
    check_same_config(tmp_path / "checkpoint.pt", {"config": old}, capped)
    with pytest.raises(RunError, match="another configuration.*d_heldout"):
        check_same_config(tmp_path / "checkpoint.pt", {"config": old},
                          resolve(agents.preset("sentigan"), "smoke", explicit={"d_heldout": 100}))


@pytest.mark.parametrize("tf32", [False, True])
def test_the_run_sets_tf32_matrix_products_as_configured_and_restores_the_flag(tmp_path, oracle_data, tf32):
    """``--tf32`` holds torch's matmul TF32 flag for the run (what CUDA's float32 products read),
    is recorded in config.json, and the flag is as before once the run returns."""
    from agents.config import resolve
    from agents.driver import train as drive

    seen = []
    before = torch.backends.cuda.matmul.allow_tf32
    resolved = resolve(agents.preset("mle"), "smoke", explicit={"tf32": tf32})
    drive(resolved, tmp_path / "run", quiet=True,
          on_iteration=lambda agent, stats, dt: seen.append(torch.backends.cuda.matmul.allow_tf32))
    assert seen and set(seen) == {tf32}
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert json.loads((tmp_path / "run" / "config.json").read_text())["values"]["tf32"] is tf32


def test_the_named_corpus_coco_loads_its_files_and_split_and_a_given_test_file_wins(tmp_path):
    from conftest import need_data

    from agents.config import RunConfig
    from agents.driver import load_data

    need_data("coco", "image_coco.txt")
    data = load_data(RunConfig(data="coco"))
    assert data.train.shape[0] == 10_000 and data.test.shape[0] == 10_000
    own = tmp_path / "test.txt"
    own.write_text("a man rides a horse\n")
    assert load_data(RunConfig(data="coco", test_data=str(own))).test.shape[0] == 1
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", "coco", "--train-size", "200") == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]["nll_test"] > 0
    # its generator against the named corpus's test split, as against that file given by path
    from textgym.evaluate import main as evaluate_main

    results = []
    for refs in ("coco", str(need_data("coco", "test_coco.txt"))):
        out = tmp_path / f"eval-{len(results)}.json"
        assert evaluate_main(["--generator", str(tmp_path / "run" / "generator.pt"), "--references", refs,
                              "--n-samples", "100", "--json", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0] == results[1] and results[0]["nll_test"] > 0 and "bleu4" in results[0]


def test_a_named_corpus_missing_from_the_data_directory_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEXTGYM_DATA", str(tmp_path))
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", "coco") != 0
    assert "corpus 'coco' needs coco/image_coco.txt and coco/test_coco.txt" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_folder_in_use_by_a_running_process_is_refused(tmp_path, oracle_data, capsys):
    from agents.checkpoints import claim_run_folder

    with claim_run_folder(tmp_path / "run"):  # another run holds it (a second open file description)
        assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 2
        assert "in use by another run" in capsys.readouterr().err
        assert not (tmp_path / "run" / "config.json").exists()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 0  # free again once released


def test_the_printed_resume_command_continues_the_run(tmp_path, oracle_data, capsys):
    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, name="full") == 0
    assert run(tmp_path, *args, "--stop-after", "1", name="cut") == 0
    hint = capsys.readouterr().out.split("continue with: python train.py ")[1].split()
    assert "--config" in hint and train.main([*hint, "--quiet"]) == 0
    full, cut = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("full", "cut"))
    assert cut["metrics"] == full["metrics"] and cut["iterations"] == 3
    # the resume from config.json kept its record of where each value came from (it rewrote every one as
    # "config": a later --config with another --budget then read the smoke caps as the file's own values)
    assert (tmp_path / "full" / "config.json").read_text() == (tmp_path / "cut" / "config.json").read_text()


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_a_stop_keeps_the_last_checkpoint_and_prints_the_command_that_resumes_it(tmp_path, oracle_data, capsys,
                                                                                  monkeypatch, stop):
    """Ctrl-C, or SIGTERM (``kill``, a scheduler's time limit), mid-run: exit status 130 (143), no
    traceback, the resume command on stderr, SIGTERM's handler restored; it continues to the
    uninterrupted run's result. Interrupted before any checkpoint: says to start over. (SIGTERM
    used to end the process where it stood, silently.)"""
    import os
    import signal

    from agents.mle import MLEAgent

    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, name="full") == 0
    step = MLEAgent.train_iteration
    status, said = (130, "interrupted") if stop == "ctrl-c" else (143, "terminated")

    def stopped_at(n):
        def train_iteration(self):
            if self.iteration == n:
                if stop == "ctrl-c":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGTERM)
            return step(self)
        return train_iteration

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(MLEAgent, "train_iteration", stopped_at(2))
    assert run(tmp_path, *args, name="cut") == status
    assert signal.getsignal(signal.SIGTERM) == before
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{said}; the last checkpoint is kept" in err
    monkeypatch.setattr(MLEAgent, "train_iteration", step)
    assert train.main([*err.split("continue with: python train.py ")[1].split(), "--quiet"]) == 0
    full, cut = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("full", "cut"))
    assert cut["metrics"] == full["metrics"] and cut["iterations"] == 3
    monkeypatch.setattr(MLEAgent, "train_iteration", stopped_at(0))
    assert run(tmp_path, *args, name="early") == status
    assert f"{said} before the first checkpoint" in capsys.readouterr().err
    # resuming it says to start again; starting again gives the full run, TensorBoard's curves included (the
    # stopped session's events at step 0 showed twice), as does a start whose config.json write a kill cut
    assert train.main([*args, "--out", str(tmp_path / "early"), "--quiet", "--resume"]) == 2
    assert "stopped before its first checkpoint: start it again, without --resume" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("not a run")  # no such hint where a new start is refused too
    assert train.main([*args, "--out", str(tmp_path / "foreign"), "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at" in err and "without --resume" not in err
    monkeypatch.setattr(MLEAgent, "train_iteration", step)
    # TensorBoard reads a folder's event files in name order: time in seconds, host, pid, then a counter of
    # this process that sorts "10" before "9"; sessions a second apart sort as they ran
    time.sleep(1.1)
    (tmp_path / "cut-config").mkdir()
    (tmp_path / "cut-config" / ".config.json.tmp-1-2").write_text('{"form')  # all a kill in its write leaves
    assert train.main(["--config", str(tmp_path / "cut-config" / "config.json"), "--resume", "--quiet",
                       "--out", str(tmp_path / "cut-config")]) == 2  # the resume command a killed run's user types
    assert "is a run stopped before its first checkpoint, start it again with its own flags" in capsys.readouterr().err
    for name in ("early", "cut-config"):
        assert run(tmp_path, *args, name=name) == 0
        assert tb_scalars(tmp_path / name) == tb_scalars(tmp_path / "full")
        assert [p.name for p in (tmp_path / name).iterdir() if ".tmp-" in p.name] == []


def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(tmp_path, oracle_data, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for device, said in (("cuda", "no CUDA device"), ("gpu", "is not a torch device")):
        assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--device", device) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()


def test_a_corpus_file_that_cannot_be_read_is_a_clear_error(tmp_path, capsys):
    blank, binary = tmp_path / "blank.txt", tmp_path / "binary.txt"
    blank.write_text("\n\n")
    binary.write_bytes(b"\xff\xfe\x00 abc\n")
    for f, said in ((blank, "holds no sentences"), (binary, "UTF-8")):
        assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", str(f)) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err


def test_a_run_killed_between_its_last_checkpoint_and_its_summary_resumes_to_the_full_summary(tmp_path, oracle_data):
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke") == 0
    folder = tmp_path / "run"
    full = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").unlink()  # the kill came after the final checkpoint was written
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--resume") == 0
    resumed = json.loads((folder / "summary.json").read_text())
    assert {"nll_oracle", "nll_test", "entropy", "d_heldout_acc"} <= set(full["metrics"])
    assert resumed["metrics"] == full["metrics"]


def test_resume_accepts_the_warm_start_folder_spelled_otherwise(tmp_path, oracle_data, monkeypatch):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", name="mle") == 0
    monkeypatch.chdir(tmp_path)  # first relative, then absolute with a trailing slash: the same folder
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", "mle", "--stop-after", "1") == 0
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--init-from", f"{tmp_path / 'mle'}/", "--resume") == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["finished"] and summary["init_from"] == "mle"  # what the first session's warm start took
    assert summary["source_agent"] == "mle" and summary["init_parts"]


def test_corrupt_metrics_or_summary_files_are_refused_on_resume_with_the_file_named(tmp_path, oracle_data, capsys):
    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, "--stop-after", "2") == 0
    folder = tmp_path / "run"
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    (folder / "metrics.jsonl").write_text("\n".join([lines[0], lines[1][:10], *lines[2:]]) + "\n")  # a torn row
    assert run(tmp_path, *args, "--resume") == 2
    assert "metrics.jsonl line 2 is corrupt (not a JSON object)" in capsys.readouterr().err
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert run(tmp_path, *args, "--resume") == 0
    (folder / "summary.json").write_text('{"agent": "ml')
    assert run(tmp_path, *args, "--resume") == 2
    assert "summary.json is corrupt" in capsys.readouterr().err


def test_train_seconds_add_up_over_the_sessions_of_a_resumed_run(tmp_path, oracle_data):
    from agents.checkpoints import read_checkpoint

    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(tmp_path, *args, "--stop-after", "2") == 0
    first, _ = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert first["train_seconds"] > 0
    assert run(tmp_path, *args, "--resume") == 0
    last, _ = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_seconds"] == last["train_seconds"] > first["train_seconds"]


def test_a_start_refused_by_the_lock_never_removes_the_holders_folder(tmp_path, monkeypatch):
    """Two starts that both found no folder: the one refused must not take the folder (and the
    lock) away from the one that holds it, nor may a third start then get in."""
    import errno
    from pathlib import Path

    import agents.checkpoints as ck
    from agents.checkpoints import RunError, claim_run_folder

    folder = tmp_path / "run"
    with claim_run_folder(folder):
        exists = Path.exists
        with monkeypatch.context() as m:  # B checked before A created the folder
            m.setattr(Path, "exists", lambda self: False if self == folder else exists(self))
            with pytest.raises(RunError, match="in use"):
                with claim_run_folder(folder):
                    pass
        assert (folder / ".lock").is_file()
        with pytest.raises(RunError, match="in use"):
            with claim_run_folder(folder):
                pass
    if ck.fcntl is not None:  # a filesystem without flock runs unlocked instead of failing
        def no_locks(fd, op):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(ck.fcntl, "flock", no_locks)
        with claim_run_folder(tmp_path / "nfs"):
            assert (tmp_path / "nfs").is_dir()


def test_a_misspelled_data_name_on_the_command_line_suggests_the_name(tmp_path, capsys):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", "cocoa") == 2
    assert "did you mean 'coco'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_warm_starting_across_conditional_and_unconditional_generators_says_why_it_cannot_work(tmp_path, capsys):
    """The sizes hint ('give it the source run's emb_dim, hidden_dim') could not help: a
    class-conditional generator's LSTM also reads the class."""
    lab = tmp_path / "lab.txt"
    lab.write_text("pos\ta good film\nneg\ta bad film\npos\tgood good film\nneg\tbad bad film\n")
    assert run(tmp_path, "--agent", "catgan", "--budget", "smoke", "--data", str(lab), "--d-filters", "8",
               "--d-emb-dim", "8", name="cat") == 0
    capsys.readouterr()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--data", str(lab), "--init-from", str(tmp_path / "cat"),
               name="mle") == 2
    err = capsys.readouterr().err
    assert "class-conditional generator" in err and "warm start from a run of the same kind" in err


def test_the_notice_names_a_discriminator_that_separates_only_the_soft_rows():
    from train import discriminator_notice

    assert discriminator_notice({"d_heldout_acc": 0.9}) is None and discriminator_notice({}) is None
    assert "is weak" in discriminator_notice({"d_heldout_acc": 0.55, "d_heldout_acc_hard": 0.5})
    soft = discriminator_notice({"d_heldout_acc": 1.0, "d_heldout_acc_hard": 0.48})
    assert "soft rows" in soft and "0.480" in soft
    assert discriminator_notice({"d_heldout_acc": 0.95, "d_heldout_acc_hard": 0.8}) is None


@pytest.mark.parametrize("agent", ["mle", "ppo"])
def test_an_unconditional_agent_on_a_labelled_corpus_says_it_trains_on_the_sentences_alone(tmp_path, agent):
    """(PPO's env was built class-conditional from the labelled data, which its policies refuse.)"""
    lines = [f"{'pos' if i % 2 else 'neg'}\t{'a good' if i % 2 else 'a bad'} film number {i % 7}" for i in range(40)]
    (tmp_path / "l.tsv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=rf"l\.tsv is a labelled corpus \('label<TAB>sentence' lines, 2 classes\): {agent} "
                                         "is not class-conditional and trains on the sentences alone"):
        assert run(tmp_path, "--agent", agent, "--budget", "smoke", "--data", str(tmp_path / "l.tsv")) == 0
    from textgym.evaluate import load_generator

    _, vocab = load_generator(tmp_path / "run" / "generator.pt", "cpu")
    assert "good" in vocab.stoi and "pos" not in vocab.stoi and "neg" not in vocab.stoi  # the labels are no words


def test_a_metrics_row_written_after_the_last_checkpoint_is_cut_on_resume(tmp_path, oracle_data):
    """D1: a row is fsynced before the checkpoint that counts it, so a kill between the two leaves one
    row the checkpoint does not count; the resume must cut metrics.jsonl back to the checkpoint's
    metrics_rows (else that iteration appears twice, once with the killed session's figures). No test
    left such a row: every resume test ended its first session cleanly."""
    import json

    import train

    def run(*args, name):
        return train.main([*args, "--out", str(tmp_path / name), "--quiet"])

    def rows(folder):
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (folder / "metrics.jsonl").read_text().splitlines()]

    args = ("--agent", "mle", "--budget", "smoke", "--mle-epochs", "3")
    assert run(*args, name="full") == 0
    assert run(*args, "--stop-after", "1", name="cut") == 0
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:  # the next iteration's row, its checkpoint never written
        f.write(json.dumps({"iteration": 2, "phase": "mle", "g_loss": 99.0, "nll_train": 99.0}) + "\n")
    assert run(*args, "--resume", name="cut") == 0
    assert len(rows(tmp_path / "full")) == 4  # the untrained generator's row and 3 iterations
    assert rows(tmp_path / "full") == rows(tmp_path / "cut")
