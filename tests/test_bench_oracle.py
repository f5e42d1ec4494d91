"""bench/oracle.py --quick: a seconds-long run of the whole oracle benchmark (MLE, every agent
from the MLE checkpoint, the control) that ends with its JSON line and writes the table."""
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
        [sys.executable, str(ROOT / "bench" / "oracle.py"), "--quick", "--table", str(table)],
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
        for k in ("nll_oracle", "nll_test", "seconds"):
            assert isinstance(res[k], float) and math.isfinite(res[k]) and res[k] > 0, (name, k, res[k])
    assert results["ppo"]["start"] == "scratch" and results["seqgan"]["start"] == "mle-checkpoint"
    adversarial = ("seqgan", "maligan", "maligan-mixed", "scratchgan", "maskgan")
    best = min(adversarial, key=lambda n: results[n]["nll_oracle"])
    assert out["best_adversarial"] == best
    assert math.isclose(out["ratio"], results["mle"]["nll_oracle"] / results[best]["nll_oracle"], rel_tol=1e-9)
    text = table.read_text()
    assert "| agent | NLL-oracle | NLL-test | seconds |" in text
    assert "published: SeqGAN" in text and "| seqgan |" in text
