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


def quick(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args, "--quick"], cwd=ROOT / "bench", env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, scorer", [
    (["mc_rollout.py"], "oracle"),
    (["mc_rollout.py", "--scorer", "cnn"], "cnn"),
    (["discriminator.py"], None),
    (["sb3_throughput.py"], None),
    (["env_throughput.py"], None),
    (["paper_protocol.py"], "cnn"),
    (["bleu.py"], None),
])
def test_speed_benchmark_quick(args, scorer):
    out = quick(args)
    assert out["benchmark"] == args[0].removesuffix(".py") and out["device"] == "cpu"
    assert out["quick"] is True  # a quick line is told apart from a full result
    ratios = [v for k, v in out.items() if k.startswith("ratio")] + \
        [v["ratio"] for v in out.get("by_num_envs", {}).values()]
    assert ratios and all(isinstance(r, float) and math.isfinite(r) and r > 0 for r in ratios)
    if scorer is not None:
        assert out["scorer"].startswith(scorer)


def test_the_step_profile_names_where_the_time_goes():
    out = quick(["profile_step.py"])
    assert out["benchmark"] == "profile_step" and out["scorer"].startswith("cnn")
    for step in ("d_update", "mc_reward"):
        top = out[step]["top"]
        assert out[step]["seconds"] > 0 and top and all(v["ms"] >= 0 and v["calls"] >= 1 for v in top.values())
    assert any("conv" in op for op in out["d_update"]["top"])  # the CNN's convolutions are among the costs


def test_the_phase_profile_times_every_part_of_an_adversarial_step():
    out = quick(["profile_step.py", "--phases"])
    assert out["mode"] == "phases" and out["scorer"].startswith("cnn") and out["train_sequences"] == 256
    parts = out["phases"]
    assert set(parts) == {"mle_epoch", "fake_batch", "real_batch", "d_trainer_step", "discriminator_round",
                          "generator_step", "heldout_stats", "checkpoint_to_memory"}
    assert all(p["seconds"] > 0 and p["host_syncs"] == -1 for p in parts.values())  # syncs are counted on CUDA only
