"""The reward-shaping study end to end: a tiny study (two cells, two seeds, the smoke budget)
writes every output; rerunning skips finished runs and resumes interrupted ones; two shards
merged equal the unsharded study; bad specs are refused before any training."""
from __future__ import annotations

import csv
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from agents.checkpoints import read_checkpoint
from agents.driver import train
from textgym import study
from textgym.study import Cell, StudyError, StudySpec, expand, resolved_for, run_study

SPEC = dict(
    name="tiny", budget="smoke", seeds=[0, 1], mle={"mle_epochs": 2, "val_size": 100, "patience": 1},
    temperatures=[0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0], eval_samples=100, eval_test_size=200,
    grid=[{"agent": ["seqgan", "maligan"], "discriminator": ["rnn"]}],
)
CELLS = ["maligan discriminator=rnn", "seqgan discriminator=rnn"]
TIMES = ("seconds", "train_seconds")
ROOT = Path(__file__).resolve().parent.parent


def run_spec(tmp_path_factory, spec, name):
    """(folder, run_study's result) of a study run once for a module's tests, on one thread."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp(name)
    return out, run_study(StudySpec.from_dict(spec), out, quiet=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, oracle_data):
    return run_spec(tmp_path_factory, SPEC, "study")


def verdict_from_results(out, key, ref_key, diversity="nll_test"):
    """The frontier verdict of ``key`` against ``ref_key``, from results.jsonl alone: NLL-oracle
    against ``diversity`` on the sweeps averaged over seeds (a check of analysis.json that does not
    go through the report's code)."""
    import statistics

    from textgym.metrics import FrontierPoint, compare_frontiers

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]

    def front(k):
        sweeps = [r["sweep"] for r in sorted(records, key=lambda r: r["seed"]) if r["key"] == k]
        return [FrontierPoint(k, rows[0]["temperature"], statistics.fmean(r["nll_oracle"] for r in rows),
                              statistics.fmean(r[diversity] for r in rows), "nll_oracle", diversity)
                for rows in zip(*sweeps, strict=True)]

    return compare_frontiers(front(key), front(ref_key)).verdict


def rows(out):
    with open(out / "results.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMES} for r in csv.DictReader(f)]


def test_tiny_study_writes_every_output(finished):
    out, result = finished
    runs = expand(StudySpec.from_dict(SPEC))
    # per seed: the shared start, the MLE control, two cells and their two no-information controls
    assert len(runs) == 12 and len(result["runs"]) == 12
    assert {(c.role, c.key) for c in runs if c.seed == 0} == {
        ("start", "mle start"), ("mle", "mle +2 updates"), *(("cell", k) for k in CELLS),
        *(("control", k.replace("rnn", "constant")) for k in CELLS)}
    for name in ("spec.json", "results.csv", "results.jsonl", "report.md", "analysis.json"):
        assert (out / name).is_file(), name
    assert len(rows(out)) == 12 and len((out / "results.jsonl").read_text().splitlines()) == 12
    report = (out / "report.md").read_text()
    for key in CELLS:
        assert f"| {key} | {key.replace('rnn', 'constant')} |" in report and f"| {key} | mle +2 updates |" in report
        assert f"| {key} | mle start |" in report
    assert "## Reading" in report
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == sorted([f"{kind}-{Cell(k, 'cell', '', (), 0).folder_name}.png"
                            for k in CELLS for kind in ("curves", "frontier")])
    analysis = json.loads((out / "analysis.json").read_text())
    for comp in analysis["comparisons"]:
        assert comp["control"]["seeds"] == [0, 1]
        assert comp["control"]["frontier"]["verdict"] == verdict_from_results(out, comp["key"], comp["control"]["key"])
        assert set(comp["control"]["differences"]) >= {"nll_oracle", "nll_test", "entropy"}


def test_every_run_starts_from_its_seeds_early_stopped_mle_and_the_controls_match(finished):
    out, _ = finished
    for seed in (0, 1):
        start = out / "cells" / f"s{seed}" / "mle+start"
        assert json.loads((start / "summary.json").read_text())["iterations"] <= 2
        for folder in (out / "cells" / f"s{seed}").iterdir():
            if folder.name == "mle+start":
                continue
            summary = json.loads((folder / "summary.json").read_text())
            assert summary["init_from"] == str(start) and summary["seed"] == seed
        mle = json.loads((Cell("mle +2 updates", "mle", "mle", (), seed).folder(out) / "config.json").read_text())
        seqgan = json.loads((out / "cells" / f"s{seed}" / "seqgan+discriminator=rnn" / "config.json").read_text())
        ctrl = json.loads((out / "cells" / f"s{seed}" / "seqgan+discriminator=constant" / "config.json").read_text())
        # the MLE control makes as many generator updates as the adversarial phase
        assert mle["values"]["mle_epochs"] * mle["values"]["iteration_updates"] == \
            seqgan["values"]["adv_steps"] * seqgan["values"]["g_steps"]
        assert ctrl["values"]["discriminator"] == "constant"
        assert {k: v for k, v in ctrl["values"].items() if k != "discriminator"} == \
            {k: v for k, v in seqgan["values"].items() if k != "discriminator"}


def test_rerun_skips_finished_runs_and_resumes_an_interrupted_one_also_in_a_moved_folder(finished, tmp_path):
    """The folder is moved after the interruption: the interrupted run's warm start is recorded
    at the old place, and the checkpoint now at the new place is the same one (its checksum), so
    the run resumes instead of being refused; another start's checkpoint there is refused."""
    out, _ = finished
    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(out, copy)
    spec = StudySpec.from_dict(SPEC)
    # interrupt one run after its first iteration: its folder holds a checkpoint and no summary
    cell = next(c for c in expand(spec) if c.seed == 1 and c.key == CELLS[1])
    shutil.rmtree(cell.folder(copy))
    summary = train(resolved_for(cell, spec, copy), cell.folder(copy), stop_after=1, quiet=True)
    assert not summary["finished"] and not (cell.folder(copy) / "record.json").exists()
    shutil.move(copy, moved)
    folder = cell.folder(moved)
    stamps = {p: p.stat().st_mtime_ns for p in moved.glob("cells/*/*/checkpoint.pt")}
    start = next(c for c in expand(spec) if c.seed == 1 and c.role == "start").folder(moved) / "checkpoint.pt"
    other = next(c for c in expand(spec) if c.seed == 0 and c.role == "start").folder(moved) / "checkpoint.pt"
    kept = start.read_bytes()
    shutil.copyfile(other, start)  # another start's checkpoint in its place: not the run's warm start
    with pytest.raises(StudyError, match="another configuration.*init_from"):
        run_study(spec, moved, quiet=True)
    start.write_bytes(kept)
    run_study(spec, moved, quiet=True)
    assert rows(moved) == rows(out)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if folder not in p.parents and p != start)
    header, _ = read_checkpoint(folder / "checkpoint.pt")
    assert header["warm_start"]["init_from"].startswith(str(copy))  # as the first session recorded it


def test_runs_another_process_is_training_are_left_to_it(finished, tmp_path):
    """A second `study run` on the same folder skips the runs the first holds (their folders'
    locks) instead of reporting them as failed, and says to rerun once they are done."""
    from agents.checkpoints import claim_run_folder

    out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    spec = StudySpec.from_dict(SPEC)
    cell = next(c for c in expand(spec) if c.seed == 1 and c.key == CELLS[1])
    shutil.rmtree(cell.folder(copy))  # still to be trained
    with claim_run_folder(cell.folder(copy)):  # as another process training it holds it
        with pytest.raises(StudyError, match=r"(?s)1 run\(s\) are being trained by another process.*s1 seqgan") as err:
            run_study(spec, copy, quiet=True)
        assert "failed" not in str(err.value)
    run_study(spec, copy, quiet=True)  # once it is free, the rerun finishes the study
    assert rows(copy) == rows(out)


def test_two_shards_merged_equal_the_unsharded_study(finished, tmp_path, capsys):
    out, _ = finished
    sharded = tmp_path / "sharded"
    spec = StudySpec.from_dict(SPEC)
    first = run_study(spec, sharded, shard=(1, 2), quiet=True)
    assert first["report"] is None and not (sharded / "report.md").exists()
    assert study.main(["merge", str(sharded)]) == 2  # the second shard is missing
    assert "runs have no results yet" in capsys.readouterr().err
    run_study(spec, sharded, shard=(2, 2), quiet=True)
    assert study.main(["merge", str(sharded)]) == 0
    assert rows(sharded) == rows(out)
    strip = lambda t: t.split("## Every configuration")[1]  # the header states the summed run time
    assert strip((sharded / "report.md").read_text()) == strip((out / "report.md").read_text())


@pytest.mark.parametrize("change,match", [
    ({"grid": []}, "grid is empty"),
    ({"grid": [{"agent": ["seqgn"]}]}, "unknown agent 'seqgn'.*did you mean seqgan"),
    ({"grid": [{"agent": ["seqgan"], "gen_lrr": [0.1]}]}, "unknown config key 'gen_lrr'"),
    ({"grid": [{"agent": ["seqgan"], "discriminator": []}]}, "empty list"),
    ({"grid": [{"agent": ["mle"]}]}, "not a grid cell"),
    ({"grid": [{"agent": ["catgan"]}]}, "class-conditional generation needs data 'oracle-classes'"),
    ({"grid": [{"agent": ["sentigan"]}], "data": "oracle-classes", "control": "random"},
     "control 'random'.*class-conditional generation agents.*constant"),
    ({"grid": [{"agent": ["seqgan"]}, {"agent": ["maskgan-infill"]}]},
     "one task.*free generation \\(seqgan\\) and in-filling \\(maskgan-infill\\)"),
    ({"grid": [{"agent": ["maskgan-infill", "maligan"]}]}, "one task.*mixes"),
    ({"grid": [{"agent": ["mle-infill"]}]}, "'mle-infill' is not a grid cell"),
    ({"grid": [{"agent": ["maskgan-infill"]}], "control": "random"}, "control 'random'.*in-filling.*constant"),
    ({"grid": [{"agent": ["maskgan-infill"], "discriminator": ["random"]}]}, "'random' is not one of this task's"),
    ({"data": "../shared/data/coco/image_coco.txt", "grid": [{"agent": ["maskgan-infill"]}]},
     "study of in-filling needs data 'oracle'"),
    ({"data": "../shared/data/coco/image_coco.txt", "grid": [{"agent": ["seqgan"], "discriminator": ["oracle"]}]},
     "needs data 'oracle'"),
    ({"seeds": []}, "at least one seed"),
    ({"temperatures": [0.5, 0.8]}, "must include 1.0"),
    ({"budget": "huge"}, "unknown budget"),
    ({"controls": "constant"}, "unknown study spec field 'controls'.*did you mean control"),
    ({"mle": {"mle_epochs": 1, "val_size": 600}}, "val_size = 600 sequences, but budget 'smoke' keeps train_size = 512"),
    # values the study sets on every run itself: a seed made each seed's run the same, data crashed after training
    ({"run": {"seed": 0}}, "spec.run sets 'seed', which the study sets itself \\(one run per seed of the spec's seeds\\)"),
    ({"run": {"data": "coco"}}, "spec.run sets 'data', which the study sets itself \\(every run takes the spec's data\\)"),
    ({"mle": {"mle_epochs": 2, "init_from": "/x"}}, "spec.mle sets 'init_from'.*each run warm starts from its seed's MLE"),
    ({"mle": {"mle_epochs": 2, "test_data": "t.txt"}}, "spec.mle sets 'test_data'"),
    ({"grid": [{"agent": ["seqgan"], "data": ["coco"]}]}, "grid entry 0 sets 'data'"),
    ({"grid": [{"agent": ["seqgan"], "test_data": ["t.txt"]}]}, "grid entry 0 sets 'test_data'"),
    ({"grid": [{"agent": ["seqgan"], "seed": [3]}]}, "grid entry 0 sets 'seed'"),
    ({"grid": [{"agent": [["seqgan"]]}]}, "grid entry 0: unknown agent \\['seqgan'\\]"),  # was a TypeError
    ({"temperatures": [0.7, 1.0, 1.0]}, "temperatures repeat: \\[0.7, 1.0, 1.0\\]"),
    ({"grid": [{"agent": ["seqgan"], "adv_steps": [2, "2"]}]},  # one key and folder for two configs
     "grid entry 0: the values .*'adv_steps': 2.* and .*'adv_steps': '2'.* both write as 'seqgan adv_steps=2'"),
    # two keys for one configuration: one run trained and reported twice
    ({"grid": [{"agent": ["seqgan"]}, {"agent": ["seqgan"], "discriminator": ["cnn"]}]},
     "cells 'seqgan' and 'seqgan discriminator=cnn' resolve to the same configuration"),
    ({"run": {"bogus": 1}}, "spec.run: unknown run config key 'bogus'"),  # was blamed on spec.mle
    # what an agent refuses when it is built: these used to fail after the start and the controls had trained
    ({"grid": [{"agent": ["seqgan"], "discriminator": [None]}]}, "cell 'seqgan discriminator=.*': reward='mc' needs a scorer"),
    ({"grid": [{"agent": ["seqgan"], "discriminator_options": [{"bogus": 1}]}]}, r"unknown option\(s\) \['bogus'\]"),
    ({"grid": [{"agent": ["reinforce"], "reward": ["dense"], "discriminator": ["cnn"]}]},
     "needs a scorer with per-prefix scores"),
])
def test_bad_specs_are_refused_before_any_training(tmp_path, capsys, change, match):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**SPEC, **change}))
    assert study.main(["run", str(spec_file), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and __import__("re").search(match, err), err
    assert not (tmp_path / "out" / "cells").exists()


def test_a_folder_of_another_study_and_bad_shards_are_refused(finished, tmp_path):
    out, _ = finished
    with pytest.raises(StudyError, match="another spec.*seeds"):
        run_study(StudySpec.from_dict({**SPEC, "seeds": [0, 1, 2]}), out, quiet=True)
    for bad in ("3/2", "0/2", "1-2"):
        with pytest.raises(StudyError, match="--shard must be i/n"):
            study.parse_shard(bad)


def test_specs_load_from_json_and_toml_and_builtins_expand(tmp_path):
    (tmp_path / "s.toml").write_text('name = "t"\nseeds = [3]\n[[grid]]\nagent = ["maskgan"]\n')
    spec = study.load_spec(str(tmp_path / "s.toml"))
    assert spec.seeds == [3] and spec.grid == [{"agent": ["maskgan"]}]
    with pytest.raises(StudyError, match="no built-in study 'oracle-shapng'.*did you mean oracle-shaping"):
        study.load_spec("oracle-shapng")
    oracle = expand(study.load_spec("oracle-shaping"))
    keys = {c.key for c in oracle}
    # each recipe with its learned and its optimal discriminator, beside its no-information control
    for agent in ("seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan"):
        assert f"{agent} discriminator=oracle" in keys and f"{agent} discriminator=constant" in keys
    assert {c.seed for c in oracle} == {0, 1, 2}
    ppo = expand(StudySpec.from_dict({**SPEC, "grid": [{"agent": ["ppo"], "discriminator": ["oracle"], "kl_beta": [0, 1]}]}))
    assert {c.key for c in ppo if c.role == "cell"} == {"ppo discriminator=oracle kl_beta=0",
                                                        "ppo discriminator=oracle kl_beta=1"}
    for spec in (study.load_spec("infill-smoke"), study.load_spec(str(ROOT / "bench" / "specs" / "infill-oracle.json"))):
        runs = expand(spec)
        assert study.task_of(spec).name == "infill"
        assert {c.agent for c in runs if c.role in ("start", "mle")} == {"mle-infill"}
        assert {c.key for c in runs if c.role == "control"} == {"maskgan-infill discriminator=constant"}
    full = expand(study.load_spec(str(ROOT / "bench" / "specs" / "infill-oracle.json")))
    assert {c.key for c in full if c.role == "cell"} == {"maskgan-infill discriminator=seq2seq",
                                                        "maskgan-infill discriminator=oracle"}
    assert {c.seed for c in full} == {0, 1, 2} and "mle-infill +15 updates" in {c.key for c in full}


def test_merge_plots_the_runs_it_collected_not_every_folder_a_glob_finds(finished, tmp_path):
    """A run both in the study's cells/ and in a shard's (a shard run into a study folder) made
    the curves' labels repeat, and merge --partial plotted an unfinished run folder without
    metrics.jsonl: both crashed merge."""
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    cell = Cell(CELLS[1], "", "", (), 0)
    shutil.copytree(cell.folder(out), cell.folder(out / "shards" / "1-of-2"))
    assert study.main(["merge", str(out)]) == 0
    unfinished = Cell(CELLS[1], "", "", (), 1).folder(out)
    for name in ("record.json", "metrics.jsonl"):
        (unfinished / name).unlink()
    assert study.main(["merge", "--partial", str(out)]) == 0
    folders = {json.loads(line)["folder"] for line in (out / "results.jsonl").read_text().splitlines()}
    assert f"cells/s0/{cell.folder_name}" in folders and len(folders) == 11
    # a shard's copy that ended otherwise (other thread counts): its cells started from it, not the kept copy
    copy = cell.folder(out / "shards" / "1-of-2") / "record.json"
    record = json.loads(copy.read_text())
    copy.write_text(json.dumps({**record, "summary_metrics": {**record["summary_metrics"], "nll_oracle": 99.0}}))
    with pytest.warns(RuntimeWarning, match="two copies of run s0 .* ended differently"):
        records = study.collect(out, StudySpec.from_dict(SPEC), partial=True)
    kept = cell.folder(out) / "record.json"
    for path in (kept, copy):  # two copies with a NaN metric are the same run (NaN != NaN in Python)
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "summary_metrics": {**record["summary_metrics"], "nll_oracle": math.nan}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        study.collect(out, StudySpec.from_dict(SPEC), partial=True)
    # records read back from their record.json (no "folder": not through collect) still plot
    from textgym.study.report import write_outputs

    write_outputs(out, StudySpec.from_dict(SPEC), [{k: v for k, v in r.items() if k != "folder"} for r in records])


def test_a_run_resumed_after_its_training_keeps_its_warnings_and_its_earlier_time(finished, tmp_path):
    """A session stopped after a run's training, before its record: the next session only
    evaluates it. Its record lost the warnings of the training, and its seconds counted the
    evaluation alone (below train_seconds)."""
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    spec = StudySpec.from_dict(SPEC)
    cell = next(c for c in expand(spec) if c.seed == 0 and c.key == CELLS[1])
    folder = cell.folder(out)
    before = json.loads((folder / "record.json").read_text())
    assert any("rewards carry no information" in w for w in before["warnings"])
    (folder / "record.json").unlink()
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "train_seconds": 1000.0}))  # a long training's
    after = study.run_cell(cell, spec, out)
    assert after["warnings"] == before["warnings"]
    assert after["train_seconds"] == 1000.0 and after["seconds"] > 1000.0


def test_a_corpus_study_reports_bleu_and_self_bleu_and_compares_their_frontiers(tmp_path):
    from conftest import need_data

    for name, src, n in (("train.txt", "image_coco.txt", 600), ("test.txt", "test_coco.txt", 200)):
        lines = need_data("coco", src).read_text(encoding="utf-8").splitlines()[:n]
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = StudySpec.from_dict({**SPEC, "data": str(tmp_path / "train.txt"), "test_data": str(tmp_path / "test.txt"),
                                "seeds": [0], "bleu_samples": 40, "grid": [{"agent": ["maskgan"]}]})
    run_study(spec, tmp_path / "out", quiet=True)
    report = (tmp_path / "out" / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| configuration"))
    assert all(f"| {m}{n} |" in header for m in ("bleu", "self-bleu") for n in (2, 3, 4, 5))
    assert "nll-oracle" not in header
    record = json.loads(next((tmp_path / "out").glob("cells/s0/maskgan/record.json")).read_text())
    assert [r["temperature"] for r in record["sweep"]] == SPEC["temperatures"]
    assert all(0 <= r["bleu4"] <= 1 and 0 <= r["self_bleu4"] <= 1 for r in record["sweep"])
    assert "BLEU-4 against Self-BLEU-4" in report


# ---------------------------------------------------------------------------- in-filling
INFILL_SPEC = dict(
    name="tiny-infill", budget="smoke", seeds=[0, 1], mle={"mle_epochs": 2, "val_size": 100, "patience": 1},
    temperatures=[0.7, 1.0, 1.5], eval_samples=64, eval_test_size=128,
    run={"train_size": 256, "eval_samples": 64, "eval_test_size": 128},  # the driver's evaluation as the study's
    grid=[{"agent": ["maskgan-infill"], "discriminator": ["seq2seq"], "critic_warmup": [2]}],
)
INFILL_CELL = "maskgan-infill critic_warmup=2 discriminator=seq2seq"
INFILL_CONTROL = "maskgan-infill critic_warmup=2 discriminator=constant"
INFILL_MLE = "mle-infill +2 updates"


@pytest.fixture(scope="module")
def infill_finished(tmp_path_factory, oracle_data):
    return run_spec(tmp_path_factory, INFILL_SPEC, "infill-study")


def test_an_infill_study_sweeps_temperatures_against_its_mle_infill_and_constant_controls(infill_finished):
    out, result = infill_finished
    runs = expand(StudySpec.from_dict(INFILL_SPEC))
    assert {(c.role, c.agent, c.key) for c in runs if c.seed == 0} == {
        ("start", "mle-infill", "mle start"), ("mle", "mle-infill", INFILL_MLE),
        ("control", "maskgan-infill", INFILL_CONTROL), ("cell", "maskgan-infill", INFILL_CELL)}
    assert len(result["runs"]) == 8
    for path in sorted(out.glob("cells/s*/*/record.json")):
        record = json.loads(path.read_text())
        assert [r["temperature"] for r in record["sweep"]] == INFILL_SPEC["temperatures"], path
        assert all(r["nll_infill"] > 0 and r["nll_oracle"] > 0 and 0 <= r["unique4"] <= 1 for r in record["sweep"])
        assert any("nll_infill" in c for c in record["curves"]) and not any("nll_test" in c for c in record["curves"])
        assert "nll_test" not in record["sweep"][0]
    for seed in (0, 1):
        folders = {k: Cell(k, "", "", (), seed).folder(out) for k in ("mle start", INFILL_MLE, INFILL_CELL, INFILL_CONTROL)}
        mle, cell, ctrl = (json.loads((folders[k] / "config.json").read_text())
                           for k in (INFILL_MLE, INFILL_CELL, INFILL_CONTROL))
        assert mle["agent"] == "mle-infill" and mle["values"]["mle_epochs"] * mle["values"]["iteration_updates"] == \
            cell["values"]["adv_steps"] * cell["values"]["g_steps"]
        assert ctrl["values"]["discriminator"] == "constant"
        start = folders["mle start"]
        assert json.loads((start / "summary.json").read_text())["agent"] == "mle-infill"
        assert json.loads((folders[INFILL_CELL] / "summary.json").read_text())["init_from"] == str(start)
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| configuration"))
    assert header == "| configuration | role | nll-oracle | nll-infill | unique2 | unique4 |"
    assert f"| {INFILL_CELL} | {INFILL_CONTROL} |" in report and f"| {INFILL_CELL} | {INFILL_MLE} |" in report
    assert f"| {INFILL_CELL} | mle start |" in report
    assert "NLL-oracle of the completed sequences against the NLL of the true blanks" in report
    assert "NLL-test" not in report and "## Reading" in report
    analysis = json.loads((out / "analysis.json").read_text())
    (comp,) = analysis["comparisons"]
    assert comp["control"]["frontier"]["verdict"] == verdict_from_results(out, comp["key"], comp["control"]["key"],
                                                                          "nll_infill")
    assert set(comp["mle"]["differences"]) == {"nll_oracle", "nll_infill", "unique2", "unique4"}
    name = Cell(INFILL_CELL, "", "", (), 0).folder_name
    assert sorted(p.name for p in (out / "plots").iterdir()) == [f"curves-{name}.png", f"frontier-{name}.png"]


def test_infill_sweep_nll_infill_depends_on_the_temperature_and_at_1_equals_the_drivers(infill_finished):
    out, _ = infill_finished
    for path in sorted(out.glob("cells/s*/*/record.json")):
        record = json.loads(path.read_text())
        at = {r["temperature"]: r for r in record["sweep"]}
        assert at[0.7]["nll_infill"] != at[1.0]["nll_infill"] != at[1.5]["nll_infill"]
        # the driver logs the same blanks of the same test sequences at the config's temperature, 1
        assert at[1.0]["nll_infill"] == record["summary_metrics"]["nll_infill"]


def test_infill_evaluate_task_takes_the_temperature_of_the_fills_and_of_nll_infill(small_oracle_data):
    import agents

    agent = agents.make("mle-infill", small_oracle_data, {"mle_epochs": 1}, seed=0)
    default, _ = agent.evaluate_task(64, 128, seed=5)
    assert agent.evaluate_task(64, 128, seed=5, temperature=1.0)[0] == default
    cold, _ = agent.evaluate_task(64, 128, seed=5, temperature=0.5)
    assert cold["nll_infill"] != default["nll_infill"] and cold["nll_oracle"] != default["nll_oracle"]
    assert cold["nll_oracle_true"] == default["nll_oracle_true"]
    tempered = agents.make("mle-infill", small_oracle_data, {"mle_epochs": 1, "temperature": 0.5}, seed=0)
    assert tempered.evaluate_task(64, 128, seed=5)[0] == cold  # the default is the config's temperature
    with pytest.raises(ValueError, match="temperature must be > 0"):
        agent.evaluate_task(64, 128, seed=5, temperature=0.0)


def test_an_infill_study_reruns_identically_skipping_finished_runs_and_resuming_an_interrupted_one(
        infill_finished, tmp_path):
    out, _ = infill_finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    spec = StudySpec.from_dict(INFILL_SPEC)
    stamps = {p: p.stat().st_mtime_ns for p in copy.glob("cells/*/*/checkpoint.pt")}
    cell = next(c for c in expand(spec) if c.seed == 1 and c.key == INFILL_CELL)
    folder = cell.folder(copy)
    shutil.rmtree(folder)
    summary = train(resolved_for(cell, spec, copy), folder, stop_after=1, quiet=True)
    assert not summary["finished"]
    run_study(spec, copy, quiet=True)
    assert rows(copy) == rows(out)
    assert json.loads((folder / "record.json").read_text())["sweep"] == \
        json.loads((cell.folder(out) / "record.json").read_text())["sweep"]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if folder not in p.parents)


# ---------------------------------------------------------------------------- class-conditional generation
CLASSES_SPEC = dict(
    name="tiny-classes", data="oracle-classes", budget="smoke", seeds=[0], mle={"mle_epochs": 1},
    temperatures=[0.7, 1.0], eval_samples=64, eval_test_size=64,
    run={"train_size": 128, "eval_samples": 64, "eval_test_size": 64},
    grid=[{"agent": ["sentigan"]}, {"agent": ["catgan"], "eval_batches": [1]}],
)


@pytest.fixture(scope="module")
def classes_finished(tmp_path_factory):
    return run_spec(tmp_path_factory, CLASSES_SPEC, "classes-study")


def test_a_class_conditional_study_starts_each_agent_from_its_own_mle_and_matches_its_updates(classes_finished):
    out, result = classes_finished
    spec = StudySpec.from_dict(CLASSES_SPEC)
    assert study.task_of(spec).name == "classes"
    assert {(c.role, c.agent, c.key) for c in expand(spec)} == {
        ("start", "sentigan", "sentigan start"), ("start", "catgan", "catgan start"),
        ("mle", "sentigan", "sentigan mle +2 updates"), ("mle", "catgan", "catgan mle +2 updates"),
        ("control", "sentigan", "sentigan discriminator=constant"),
        ("control", "catgan", "catgan discriminator=constant eval_batches=1"),
        ("cell", "sentigan", "sentigan"), ("cell", "catgan", "catgan eval_batches=1")}
    assert len(result["runs"]) == 8
    for agent, cell_key in (("sentigan", "sentigan"), ("catgan", "catgan eval_batches=1")):
        start = Cell(f"{agent} start", "", "", (), 0).folder(out)
        summary = json.loads((start / "summary.json").read_text())
        assert summary["config"]["adv_steps"] == 0 and summary["iterations"] == 1  # its MLE phase only
        cell, mle = (json.loads((Cell(k, "", "", (), 0).folder(out) / "summary.json").read_text())
                     for k in (cell_key, f"{agent} mle +2 updates"))
        assert cell["init_from"] == mle["init_from"] == str(start) and cell["config"]["mle_epochs"] == 0
        # the MLE control: the same agent, as many generator updates as the adversarial phase makes
        assert mle["agent"] == agent and mle["config"]["adv_steps"] == 0
        assert mle["config"]["mle_epochs"] * mle["config"]["iteration_updates"] == \
            cell["config"]["adv_steps"] * cell["config"]["g_steps"]
    for path in out.glob("cells/s0/*/record.json"):
        record = json.loads(path.read_text())
        assert [r["temperature"] for r in record["sweep"]] == [0.7, 1.0]
        cold, warm = record["sweep"]
        assert cold["nll_test"] != warm["nll_test"] and cold["nll_oracle"] != warm["nll_oracle"]
        assert {"nll_oracle_c0", "nll_oracle_c1", "nll_test_c0", "nll_test_c1"} <= set(warm)
        assert warm["nll_test"] == record["summary_metrics"]["nll_test"]  # the driver's test rows, at τ = 1
    report = (out / "report.md").read_text()
    assert "| sentigan | sentigan start |" in report and "| catgan eval_batches=1 | catgan mle +2 updates |" in report
    assert "NLL-oracle (each sample under its class's oracle)" in report


def test_catgans_no_information_control_leaves_the_generator_at_its_start(classes_finished):
    """A constant D gives the relativistic losses zero gradient: the control's generator is its start's."""
    out, _ = classes_finished
    states = [read_checkpoint(Cell(k, "", "", (), 0).folder(out) / "checkpoint.pt")[1]["generator"]
              for k in ("catgan start", "catgan discriminator=constant eval_batches=1", "catgan eval_batches=1")]
    start, control, cell = states
    assert all(torch.equal(start[k], control[k]) for k in start)
    assert not all(torch.equal(start[k], cell[k]) for k in start)  # the learned D does move it


def test_a_class_conditional_study_refuses_other_data_and_mixed_tasks():
    with pytest.raises(StudyError, match="class-conditional generation needs data 'oracle-classes'"):
        expand(StudySpec.from_dict({**CLASSES_SPEC, "data": "oracle"}))
    with pytest.raises(StudyError, match="mixes class-conditional generation .*free generation"):
        expand(StudySpec.from_dict({**CLASSES_SPEC, "grid": [{"agent": ["sentigan"]}, {"agent": ["seqgan"]}]}))
    with pytest.raises(StudyError, match="start of catgan is that agent's own MLE phase.*unknown config key 'val_size'"):
        expand(StudySpec.from_dict({**CLASSES_SPEC, "mle": {"mle_epochs": 1, "val_size": 10}}))


def _hand_record(key, role, seed, shift, agent="seqgan", control=None, mle=None):
    """A study record whose sweep is the line nll_oracle = 9 + shift + (tau - 1), nll_test = 8 - (tau - 1)
    over three temperatures: ``shift`` < 0 is a better generator at every diversity."""
    sweep = [{"temperature": t, "nll_oracle": 9.0 + shift + (t - 1.0), "nll_test": 8.0 - (t - 1.0), "entropy": 7.0}
             for t in (0.8, 1.0, 1.2)]
    return {"key": key, "role": role, "agent": agent, "values": {}, "seed": seed, "control": control,
            "mle_control": mle, "summary_metrics": {}, "sweep": sweep, "seconds": 1.0, "iterations": 1, "curves": []}


def _hand_records(seeds, cell_shifts, control_shifts):
    records = []
    for i, s in enumerate(seeds):
        records += [_hand_record("mle start", "start", s, 0.0, agent="mle"),
                    _hand_record("mle +1 updates", "mle", s, 0.0, agent="mle"),
                    _hand_record("seqgan discriminator=constant", "control", s, control_shifts[i], mle="mle +1 updates"),
                    _hand_record("seqgan", "cell", s, cell_shifts[i], control="seqgan discriminator=constant",
                                 mle="mle +1 updates")]
    return records


def test_the_analysis_reports_cell_minus_control_with_the_paired_t_interval_and_the_better_frontier():
    from textgym.study.report import analyze

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    cell, control = [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1]
    comp = analyze(spec, _hand_records([0, 1, 2], cell, control))["comparisons"][0]
    d = [c - r for c, r in zip(cell, control, strict=True)]  # -0.5, -0.3, -0.9: mean -0.5667, sd 0.3055
    mean = sum(d) / 3
    sd = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    half = 4.302652729911275 * sd / 3 ** 0.5  # t quantile 0.975 with 2 degrees of freedom
    ci = comp["control"]["differences"]["nll_oracle"]
    assert ci["estimate"] == pytest.approx(mean) and ci["low"] == pytest.approx(mean - half)
    assert ci["high"] == pytest.approx(mean + half)
    assert comp["control"]["frontier"]["verdict"] == "dominates"  # lower NLL-oracle at every NLL-test
    # the area between the frontiers over the shared NLL-test range [7.8, 8.2]: (control - cell) x 0.4
    assert comp["control"]["frontier"]["areas"] == pytest.approx([-x * 0.4 for x in d])
    assert comp["start"]["differences"]["nll_oracle"]["estimate"] == pytest.approx(sum(cell) / 3)


def test_frontiers_without_a_common_range_report_no_area_instead_of_a_zero_interval():
    """A collapsed cell (one point on its frontier) shares no diversity range with its references:
    its area is "no common range", not +0.000 [+0.000, +0.000]."""
    from textgym.study.report import analyze, report_markdown

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    for r in records:
        if r["key"] == "seqgan":  # every temperature gives the same samples
            r["sweep"] = [{**p, "nll_oracle": 1.0, "nll_test": 12.0} for p in r["sweep"]]
    analysis = analyze(spec, records)
    fr = analysis["comparisons"][0]["control"]["frontier"]
    assert fr["area"] is None and fr["area_note"] == "no common range" and fr["areas"] == [None] * 3
    text = report_markdown(spec, analysis, records)
    assert "| no common range |" in text and "(area no common range)" in text  # the table's column, the reading


def test_seeds_whose_sweeps_have_different_temperatures_are_refused_not_averaged_by_position():
    from textgym.study.report import analyze

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    cell1 = next(r for r in records if r["key"] == "seqgan" and r["seed"] == 1)
    cell1["sweep"] = cell1["sweep"][::-1]  # 1.2, 1.0, 0.8: averaged row by row, 0.8 would meet 1.2
    with pytest.raises(StudyError, match=r"sweeps of seqgan and seqgan discriminator=constant over seeds: seqgan s1 "
                                         r"\[1.2, 1.0, 0.8\] against \[0.8, 1.0, 1.2\]"):
        analyze(spec, records)


def test_a_non_finite_metric_is_left_out_and_listed_instead_of_crashing_the_analysis():
    from textgym.study.report import analyze, report_markdown

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    cell1 = next(r for r in records if r["key"] == "seqgan" and r["seed"] == 1)
    cell1["sweep"][1]["nll_test"] = float("nan")  # the evaluation at temperature 1
    cell1["sweep"][0]["nll_oracle"] = float("inf")  # another point of its frontier: dropped, so listed too
    analysis = analyze(spec, records)
    assert analysis["left_out"] == ["s1 seqgan: nll_test = nan",
                                    "s1 seqgan: nll_oracle = inf at temperature 0.8 (a point of its frontier)"]
    ci = analysis["comparisons"][0]["control"]["differences"]
    assert ci["nll_test"]["df"] == 1.0 and ci["nll_oracle"]["df"] == 2.0  # the other two seeds; the other metrics whole
    assert "Left out as not finite (the statistics use the other seeds; a seed-averaged frontier leaves a seed out of " \
        "both curves at a temperature where it is not finite): s1 seqgan: nll_test = nan; s1 seqgan: " \
        "nll_oracle = inf at temperature 0.8 (a point of its frontier)." in report_markdown(spec, analysis, records)
    # the seed-averaged frontier: that temperature averages the other seeds (one seed's inf took it out of
    # the cell's averaged frontier only, so a cell equal to its control was "dominated")
    same = _hand_records([0, 1, 2], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # every sweep the same
    cell1 = next(r for r in same if r["key"] == "seqgan" and r["seed"] == 1)
    cell1["sweep"] = [dict(p) for p in cell1["sweep"]]
    cell1["sweep"][0]["nll_oracle"] = float("inf")
    comparison = analyze(spec, same)["comparisons"][0]
    assert [comparison[ref]["frontier"]["verdict"] for ref in ("control", "mle", "start")] == ["equal"] * 3
    # both sides average the same seeds at each temperature: a cell worse than its control by 0.1 on every seed,
    # whose seed 2 failed (inf) at 0.8, averaged its two better seeds there and "crossed" its control
    worse = _hand_records([0, 1, 2], [0.1, 0.1, 3.0], [0.0, 0.0, 2.9])
    cell2 = next(r for r in worse if r["key"] == "seqgan" and r["seed"] == 2)
    cell2["sweep"] = [dict(p) for p in cell2["sweep"]]
    cell2["sweep"][0]["nll_oracle"] = float("inf")
    fr = analyze(spec, worse)["comparisons"][0]["control"]["frontier"]
    assert fr["verdict"] == "dominated" and fr["area_of_means"] < 0


def test_a_seed_without_a_finite_frontier_point_gets_no_area_and_is_listed():
    """A sweep whose every temperature had a NaN NLL-oracle crashed the whole analysis (its seed's
    frontier comparison and the seed-averaged one)."""
    from textgym.study.report import analyze, report_markdown

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    cell1 = next(r for r in records if r["key"] == "seqgan" and r["seed"] == 1)
    cell1["sweep"] = [{**p, "nll_oracle": float("nan")} for p in cell1["sweep"]]
    analysis = analyze(spec, records)
    fr = analysis["comparisons"][0]["control"]["frontier"]
    assert fr["areas"] == pytest.approx([0.2, None, 0.36]) and fr["area"]["df"] == 1.0
    assert fr["verdict"] == "dominates" and fr["area_note"] == "2 of 3 seeds share a range; s1 has no frontier (no finite point)"
    assert analysis["left_out"] == ["s1 seqgan: nll_oracle = nan",
                                    "s1 seqgan: its frontier (no temperature with finite nll_oracle and nll_test)"]
    assert "(2 of 3 seeds share a range; s1 has no frontier (no finite point)) |" in report_markdown(spec, analysis, records)


def test_a_frontier_below_mles_without_an_area_interval_says_why_instead_of_citing_one():
    """A collapsed cell (one point, worse than MLE's) shares no diversity range with MLE's sweep:
    the reading said "the seeds' area interval includes 0" of an interval that does not exist."""
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    for r in records:
        if r["key"] == "seqgan":
            r["sweep"] = [{**p, "nll_oracle": 20.0, "nll_test": 8.0} for p in r["sweep"]]
    analysis = analyze(spec, records)
    assert analysis["comparisons"][0]["mle"]["frontier"]["verdict"] == "dominated"
    lines = reading(analysis, frontier_axes(spec)[0], task_of(spec))
    assert [line for line in lines if "MLE control's" in line and "seqgan" in line] == [
        "- Frontier below the MLE control's on the seed-averaged sweeps, with no area interval to test it: `seqgan` "
        "(no common range)."]


@pytest.mark.parametrize("shifts, claim", [
    ([0.5, 0.4, 0.6], "Frontier dominated by the MLE control's, with an area interval below 0"),
    ([0.5, -0.1, 0.3], "Frontier below the MLE control's on the seed-averaged sweeps, but the seeds' area interval "
                       "includes 0"),
])
def test_a_frontier_is_called_dominated_by_mles_only_when_the_seeds_area_interval_says_so(shifts, claim):
    """The seed-averaged frontier is below MLE's in both cases; in the second one seed is better
    than MLE, and "dominated" was claimed without an interval, a weaker test than a "beats" faces."""
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    analysis = analyze(spec, _hand_records([0, 1, 2], shifts, [0.0, 0.1, 0.1]))
    assert analysis["comparisons"][0]["mle"]["frontier"]["verdict"] == "dominated"
    lines = reading(analysis, frontier_axes(spec)[0], task_of(spec))
    assert [line for line in lines if "MLE control's" in line and "seqgan" in line] == [
        f"- {claim}" + (" (the same updates spent on MLE do better at every diversity)" if "below 0" in claim else "")
        + ": `seqgan`."]


def test_a_cell_that_beats_its_control_while_worse_on_another_metric_says_so():
    """A generator collapsed onto a few likely sequences beats its control on NLL-oracle and is far
    worse on NLL-test: the reading names both."""
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.4, -0.6], [0.0, 0.0, 0.0])
    for r in records:
        if r["key"] == "seqgan":
            r["sweep"] = [{**p, "nll_test": p["nll_test"] + 1.0 + 0.1 * r["seed"]} for p in r["sweep"]]
    lines = reading(analyze(spec, records), frontier_axes(spec)[0], task_of(spec))
    (line,) = [x for x in lines if x.startswith("- Beats its control")]
    assert "; but worse than its control on nll-test +1.100 [+0.852, +1.348] *" in line


def test_one_seed_gives_no_intervals_and_the_reading_claims_nothing():
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0]})
    analysis = analyze(spec, _hand_records([0], [-2.5], [0.2]))
    assert analysis["comparisons"][0]["start"]["differences"] == {}
    text = "\n".join(reading(analysis, frontier_axes(spec)[0], task_of(spec)))
    assert "no intervals" in text and "did not move" not in text and "Indistinguishable" not in text


# ---------------------------------------------------------------------------- bad values and corrupt files
ONE_CELL = {**SPEC, "seeds": [0], "grid": [{"agent": ["seqgan"], "discriminator": ["rnn"]}]}


@pytest.mark.parametrize("change,match", [
    ({"eval_samples": "many"}, "eval_samples must be an integer >= 1, got 'many'"),
    ({"eval_samples": 1.5}, "eval_samples must be an integer >= 1, got 1.5"),
    ({"eval_test_size": -5}, "eval_test_size must be an integer >= 1 .*got -5"),
    ({"bleu_samples": 1}, "bleu_samples must be an integer >= 2, got 1"),  # Self-BLEU needs two
    ({"grid": [{"agent": ["ppo"], "policy": ["gru"]}]}, "policy 'gru' cannot start from the study's MLE generator"),
    ({"seeds": [0, True]}, "seeds must be integers >= 0, got True"),
    ({"seeds": [0, -1]}, "seeds must be integers >= 0, got -1"),
    ({"seeds": 3}, "seeds must be a list, got 3"),
    ({"temperatures": [1.0, True]}, "temperatures must be at least 2 finite positive numbers"),
    ({"temperatures": [1.0, float("inf")]}, "temperatures must be at least 2 finite positive numbers"),
    ({"mle": [1]}, "mle must be a mapping of config fields"),
    ({"budget": ["smoke"]}, "budget must be a string"),
    ({"format": "other-v9"}, "\"format\" is 'other-v9', not this version's 'textgym-study-v1'"),
    ({"name": "../../etc"}, "name must not be empty, start with '.' or hold a path separator .*got '../../etc'"),
    ({"name": "a/b"}, "name must not be empty, start with '.' or hold a path separator .*got 'a/b'"),
])
def test_spec_sizes_seeds_and_format_are_checked_before_any_training(tmp_path, capsys, change, match):
    """These passed expand(): a bad evaluation size crashed after the start had trained or ran
    silently, a bool passed for a seed, and any "format" was dropped."""
    import re

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**ONE_CELL, **change}))
    assert study.main(["run", str(spec_file), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(match, err), err
    assert not (tmp_path / "out" / "cells").exists()


def test_a_corrupt_spec_json_of_a_study_folder_is_named_by_run_and_merge(tmp_path, capsys, oracle_data):
    spec_file = tmp_path / "my-spec.json"
    spec_file.write_text(json.dumps(ONE_CELL))
    out = tmp_path / "out"
    out.mkdir()
    for content, what in (('{"format": "textgym-study-v1", "na', "not JSON"), ("[1, 2]", "a JSON list, not a study spec")):
        (out / "spec.json").write_text(content)
        assert study.main(["run", str(spec_file), "--out", str(out), "--quiet"]) == 2
        assert study.main(["merge", str(out)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"error: {out / 'spec.json'} is corrupt ({what}); restore it from a copy of the spec the study "
                       "was started with, or start the study in another folder"] * 2
        assert not (out / "cells").exists()


def test_a_corrupt_or_foreign_record_json_is_refused_before_anything_trains(tmp_path, oracle_data):
    """A corrupt record.json was a run failure that rerunning 'retries' (it never could), a JSON
    list one an AttributeError, and the record of another run was reused as this run's."""
    spec = StudySpec.from_dict(ONE_CELL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps(spec.to_dict()))
    cell = next(c for c in expand(spec) if c.role == "cell")
    path = cell.folder(out) / "record.json"
    path.parent.mkdir(parents=True)
    redo = "; delete it and rerun the study to redo that run"
    foreign = {"format": study.RECORD_FORMAT, "key": "mle start", "seed": 0}
    for content, problem in (('{"format": "textgym-study-cell-v1", "ke', "is corrupt (not JSON)"),
                             ("[]", "is corrupt (a JSON list, not a study record)"),
                             (json.dumps(foreign), "is the record of run s0 'mle start', not of s0 'seqgan discriminator=rnn'")):
        path.write_text(content)
        calls = [lambda: run_study(spec, out, quiet=True), lambda: study.run_cell(cell, spec, out)]
        if content != json.dumps(foreign):
            calls.append(lambda: study.collect(out, spec))
        for call in calls:
            with pytest.raises(StudyError) as exc:
                call()
            assert str(exc.value) == f"{path} {problem}{redo}"
        assert [p.name for p in (out / "cells" / "s0").iterdir()] == [cell.folder_name]  # nothing trained


def test_a_cell_with_one_seed_among_cells_with_three_gets_no_verdict():
    """merge --partial: a cell that finished one seed has no interval; it is neither called
    indistinguishable from its control nor unchanged."""
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan", "maligan"]}], "seeds": [0, 1, 2]})
    records = _hand_records([0, 1, 2], [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1])
    records += [_hand_record("maligan discriminator=constant", "control", 0, 0.0, agent="maligan", mle="mle +1 updates"),
                _hand_record("maligan", "cell", 0, -3.0, agent="maligan", control="maligan discriminator=constant",
                             mle="mle +1 updates")]
    lines = reading(analyze(spec, records), frontier_axes(spec)[0], task_of(spec))
    about = [line for line in lines if "`maligan`" in line]
    assert len(about) == 1 and about[0].startswith("- No interval against the no-information control")


def test_two_runs_whose_keys_would_share_a_folder_are_refused_before_anything_runs():
    spec = StudySpec.from_dict({"name": "x", "seeds": [0], "grid": [{
        "agent": ["seqgan"], "discriminator": ["rnn"], "discriminator_options": [{"x": [1, 2]}, {"x": "1, 2"}]}]})
    with pytest.raises(StudyError, match="would share the folder"):
        expand(spec)


def test_a_record_copied_into_another_runs_folder_is_refused_by_merge(finished, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    folders = sorted(p.parent for p in out.glob("cells/s0/*/record.json"))
    shutil.copy(folders[0] / "record.json", folders[1] / "record.json")  # folders[1] now claims to be folders[0]'s run
    assert study.main(["merge", str(out)]) == 2
    assert "whose folder is" in capsys.readouterr().err


def test_a_device_this_machine_lacks_is_refused_before_the_study_folder_is_made(tmp_path, capsys):
    from textgym.study import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["run", "smoke", "--out", str(tmp_path / "s"), "--device", "cuda", "--quiet"]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_a_run_whose_generator_file_is_missing_is_a_run_error_with_the_remedy(tmp_path, small_oracle_data):
    """The evaluate CLI's SystemExit became a worker's silent exit (and a broken pool)."""
    from agents.checkpoints import RunError
    from textgym.study.run import evaluate_sweep

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}]})
    with pytest.raises(RunError, match="no generator file at .*; delete the run's folder and rerun the study"):
        evaluate_sweep(tmp_path, small_oracle_data, spec, 0, "cpu")


def test_a_failed_start_is_reported_and_stops_the_runs_of_its_seed(tmp_path, monkeypatch, oracle_data):
    from agents.checkpoints import RunError
    from textgym.study import run

    called = []

    def fake_run_cell(cell, spec, root, device="cpu", threads=0):
        called.append((cell.seed, cell.role))
        if cell.seed == 0 and cell.role == "start":
            raise RunError("the start broke")
        return {"key": cell.key, "seed": cell.seed}

    monkeypatch.setattr(run, "run_cell", fake_run_cell)
    with pytest.raises(StudyError, match=r"(?s)1 run\(s\) failed.*s0 mle start: RunError: the start broke"):
        run_study(StudySpec.from_dict(SPEC), tmp_path / "s", quiet=True)
    assert (0, "start") in called and not any(s == 0 and r != "start" for s, r in called)
    assert sum(s == 1 for s, _ in called) == len([c for c in expand(StudySpec.from_dict(SPEC)) if c.seed == 1])


def test_with_workers_a_run_trained_in_the_main_process_gets_a_workers_threads(tmp_path, monkeypatch, oracle_data):
    """A phase of one run (a shard's start) ran in the main process on all its threads, where the
    runs of the workers have threads // workers: copies of a start in two shards could differ."""
    from agents.checkpoints import RunError
    from textgym.study import run

    seen = []

    def fake_run_cell(cell, spec, root, device="cpu", threads=0):
        if threads > 0:
            torch.set_num_threads(threads)
        seen.append((cell.role, torch.get_num_threads()))
        raise RunError("stop here")  # its seed's other runs are skipped: nothing reaches the pool

    monkeypatch.setattr(run, "run_cell", fake_run_cell)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(StudyError, match="stop here"):
            run_study(StudySpec.from_dict({**SPEC, "seeds": [0]}), tmp_path / "s", workers=2, quiet=True)
        assert seen == [("start", 1)] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_shards_started_together_accept_a_folder_whose_spec_is_being_written(tmp_path):
    """Shards of a job array start at once: one finds the other's temporary spec.json (or its
    shards/ folder) and used to refuse the folder as holding no study."""
    from textgym.study.run import _check_folder_spec

    spec = StudySpec.from_dict(SPEC)
    out = tmp_path / "s"
    (out / "shards" / "2-of-2").mkdir(parents=True)
    (out / ".spec.json.tmp-123-456").write_text("{")
    _check_folder_spec(out, spec)
    assert json.loads((out / "spec.json").read_text()) == json.loads(json.dumps(spec.to_dict()))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="is not empty and holds no study"):
        _check_folder_spec(tmp_path / "other", spec)


def test_a_runs_metrics_carry_every_held_out_discriminator_figure_of_its_summary():
    """The class-conditional agents' d_heldout_acc_hard and d_heldout_class_acc reach the report
    beside d_heldout_acc (only d_heldout_acc used to); lists such as the by-position accuracy do not."""
    from textgym.study.report import _at

    record = {"sweep": [{"temperature": 1.0, "nll_oracle": 9.5}, {"temperature": 0.8, "nll_oracle": 9.0}],
              "summary_metrics": {"d_heldout_acc": 1.0, "d_heldout_acc_hard": 0.48, "d_heldout_class_acc": 0.3,
                                  "d_heldout_acc_by_position": [0.5, 0.6], "nll_oracle": 1.0}}
    assert _at(record) == {"nll_oracle": 9.5, "d_heldout_acc": 1.0, "d_heldout_acc_hard": 0.48,
                           "d_heldout_class_acc": 0.3}


def test_a_dominated_verdict_with_an_area_interval_above_zero_is_not_said_to_include_zero():
    """The verdict comes from the seed-averaged sweeps and the interval from the per-seed areas:
    they can disagree, and the reading then said "the area interval includes 0" of [+0.04, +0.05]."""
    from textgym.study.report import analyze, frontier_axes, reading
    from textgym.study.spec import task_of

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    analysis = analyze(spec, _hand_records([0, 1, 2], [0.5, 0.4, 0.6], [0.0, 0.1, 0.1]))
    front = analysis["comparisons"][0]["mle"]["frontier"]
    assert front["verdict"] == "dominated"
    front["area"] = {**front["area"], "estimate": 0.047, "low": 0.043, "high": 0.052}
    lines = [line for line in reading(analysis, frontier_axes(spec)[0], task_of(spec)) if "- Frontier" in line]
    assert lines == ["- Frontier below the MLE control's on the seed-averaged sweeps, but the seeds' area interval is "
                     "above 0 (the per-seed frontiers say the cell is better): `seqgan`."]


def test_the_area_of_means_is_between_the_seed_averaged_sweeps():
    """ST1: _hand_records' sweeps are lines shifted by each seed's shift, so the seed-averaged sweeps
    differ by the mean shift and the area over the shared range of width 0.4 is -mean(d) · 0.4."""
    from textgym.study import StudySpec
    from textgym.study.report import analyze

    spec = StudySpec.from_dict({"name": "hand", "grid": [{"agent": ["seqgan"]}], "seeds": [0, 1, 2]})
    cell, control = [-0.5, -0.2, -0.8], [0.0, 0.1, 0.1]
    fr = analyze(spec, _hand_records([0, 1, 2], cell, control))["comparisons"][0]["control"]["frontier"]
    d = [c - r for c, r in zip(cell, control)]
    assert fr["area_of_means"] == pytest.approx(-sum(d) / 3 * 0.4)
