"""bench/oracle.py --quick: a seconds-long run of the whole oracle benchmark (MLE, every agent
warm started from the MLE run, the control) through the training driver, ending with its JSON
line and the table; a second call reuses the finished MLE run."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_oracle_quick(tmp_path):
    table = tmp_path / "oracle.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "oracle.py"), "--quick", "--table", str(table), "--runs", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "oracle" and out["device"] == "cpu" and out["quick"] is True
    assert out["published"] == {"mle": 9.038, "seqgan": 8.736}
    assert isinstance(out["oracle"], str) and out["oracle"]
    for key in ("mle_epochs", "adv_steps", "d_pretrain_steps", "d_steps", "d_epochs", "d_samples", "n_rollouts",
                "eval_samples", "train_size"):
        assert key in out["budget"], key
    results = out["results"]
    expected = {"mle", "mle-continued", "seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan", "ppo"}
    assert expected <= set(results), set(results)
    for name, res in results.items():
        assert "error" not in res, (name, res.get("error"))
        for k in ("nll_oracle", "nll_test", "entropy", "seconds"):
            assert isinstance(res[k], float) and math.isfinite(res[k]) and res[k] > 0, (name, k, res[k])
    assert results["ppo"]["start"] == "mle-run" and results["seqgan"]["start"] == "mle-run"
    assert (tmp_path / "runs" / "seqgan" / "summary.json").is_file()
    # recipes survive the benchmark's budget: ScratchGAN keeps batch 512 and no D pretraining
    assert results["scratchgan"]["config"]["batch_size"] == 512 and results["scratchgan"]["config"]["d_pretrain_steps"] == 0
    assert results["seqgan"]["config"]["mle_epochs"] == 0  # warm started
    adversarial = ("seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan", "ppo")
    best = min(adversarial, key=lambda n: results[n]["nll_oracle"])
    assert out["best_adversarial"] == best
    assert math.isclose(out["ratio"], results["mle"]["nll_oracle"] / results[best]["nll_oracle"], rel_tol=1e-9)
    text = table.read_text()
    assert "| agent | NLL-oracle | NLL-test | entropy | seconds |" in text
    assert "published: SeqGAN" in text and "| seqgan |" in text
    again = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "oracle.py"), "--quick", "--agents", "maskgan", "--control-epochs", "0",
         "--runs", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[mle] reused the finished run" in again.stderr and "[maskgan] reused" in again.stderr
    out2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert out2["results"]["maskgan"]["nll_oracle"] == results["maskgan"]["nll_oracle"]
