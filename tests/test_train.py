"""train.py end to end: every agent with the smoke budget, resume equals an uninterrupted run,
and refusals of bad input."""
from __future__ import annotations

import json
import math

import pytest

import agents
import train


def run(tmp_path, *args: str, name: str = "run") -> int:
    return train.main([*args, "--out", str(tmp_path / name), "--quiet"])


def rows(folder):
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("agent", agents.available())
def test_every_agent_runs_with_the_smoke_budget(tmp_path, agent, oracle_data):
    assert run(tmp_path, "--agent", agent, "--budget", "smoke") == 0
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["agent"] == agent and summary["iterations"] >= 1
    assert math.isfinite(summary["metrics"]["nll_oracle"]) and math.isfinite(summary["metrics"]["nll_test"])
    assert (folder / "checkpoint.pt").is_file() and (folder / "config.json").is_file()
    assert (folder / "metrics.csv").read_text().startswith("iteration,")
    assert any((folder / "samples").iterdir()) and any((folder / "tb").iterdir())
    assert len(rows(folder)) == summary["iterations"] + 1  # + the untrained generator's row


@pytest.mark.parametrize("agent,cut", [("seqgan", 3), ("ppo", 1)])  # seqgan: cut between adversarial steps
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path, agent, cut, oracle_data):
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", name="full") == 0
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", "--stop-after", str(cut), name="cut") == 0
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert run(tmp_path, "--agent", agent, "--budget", "smoke", "--resume", name="cut") == 0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    cut = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert full["metrics"] == cut["metrics"]
    assert rows(tmp_path / "full") == rows(tmp_path / "cut")


def test_refusals(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "gan9000") == 2
    assert "valid agents" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--set", "reward=sparse") == 2
    assert "sparse" in capsys.readouterr().err
    assert run(tmp_path, "--agent", "seqgan", "--budget", "smoke", "--discriminator", "lstm9") == 2
    assert "valid" in capsys.readouterr().err
    # dense rewards need per-prefix scores, which the CNN has not
    assert run(tmp_path, "--agent", "scratchgan", "--budget", "smoke", "--discriminator", "cnn") == 2
    assert "prefix" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        run(tmp_path, "--agent", "mle", "--set", "oops")


def test_checkpoints_of_other_configurations_and_corrupt_ones_are_refused(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--stop-after", "1") == 0
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 2  # exists: needs --resume
    assert "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="another configuration.*seed"):
        run(tmp_path, "--agent", "mle", "--budget", "smoke", "--seed", "1", "--resume")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit, match="corrupt"):
        run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume")
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume", name="elsewhere")


def test_generator_file_evaluates(tmp_path, oracle_data, capsys):
    from textgym.evaluate import main as evaluate_main

    assert run(tmp_path, "--agent", "mle", "--budget", "smoke") == 0
    assert evaluate_main(["--generator", str(tmp_path / "run" / "generator.pt"), "--n-samples", "200",
                          "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result["nll_oracle"] > 5.7 and abs(result["nll_oracle"] - summary["metrics"]["nll_oracle"]) < 0.5


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
