"""The speed benchmarks in ``--quick`` mode: each runs, says which scorer its figures use where
it has one, and ends with one JSON line holding its ratio to the baseline it ran beside."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, scorer", [
    (["mc_rollout.py"], "oracle"),
    (["mc_rollout.py", "--scorer", "cnn"], "cnn"),
    (["discriminator.py"], None),
    (["sb3_throughput.py"], None),
    (["env_throughput.py"], None),
    (["paper_protocol.py"], "cnn"),
])
def test_speed_benchmark_quick(args, scorer):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args, "--quick"], cwd=ROOT / "bench", env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == args[0].removesuffix(".py") and out["device"] == "cpu"
    ratios = [v for k, v in out.items() if k.startswith("ratio")] + \
        [v["ratio"] for v in out.get("by_num_envs", {}).values()]
    assert ratios and all(isinstance(r, float) and math.isfinite(r) and r > 0 for r in ratios)
    if scorer is not None:
        assert out["scorer"].startswith(scorer)
