"""Files are data, never code: a checkpoint or generator file whose unpickling would run code is
refused without running it, and a generator file can only name a known class."""
from __future__ import annotations

import hashlib
import io

import pytest
import torch

import train


class Exploit:
    """Unpickling this object opens (creates) ``path``: a stand-in for arbitrary code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def run(tmp_path, *args: str) -> int:
    return train.main([*args, "--out", str(tmp_path / "run"), "--quiet"])


@pytest.mark.parametrize("where", ["outer", "body"])
def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path, oracle_data, capsys, where):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--stop-after", "1") == 0
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "run" / "checkpoint.pt"
    if where == "outer":
        ckpt.write_bytes(saved({"header": Exploit(str(marker)), "body": b""}))
    else:  # a well-formed header whose checksum matches a malicious body
        body = saved({"agent": Exploit(str(marker))})
        header = {"format": "textgym-checkpoint-v1", "agent": "mle", "config": {}, "iteration": 1, "metrics_rows": 2,
                  "sha256": hashlib.sha256(body).hexdigest()}
        ckpt.write_bytes(saved({"header": header, "body": body}))
    capsys.readouterr()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--resume") == 2
    assert "objects other than tensors and plain data" in capsys.readouterr().err
    assert not marker.exists()


def test_a_generator_file_that_would_run_code_or_name_any_class_is_refused(tmp_path, oracle_data):
    from textgym.evaluate import main as evaluate_main

    marker = tmp_path / "pwned"
    bad = tmp_path / "generator.pt"
    bad.write_bytes(saved({"format": "textgym-generator-v1", "class": Exploit(str(marker))}))
    with pytest.raises(SystemExit, match="objects other than tensors"):
        evaluate_main(["--generator", str(bad)])
    assert not marker.exists()
    # plain data naming a callable that is not a generator class: nothing is imported or called
    bad.write_bytes(saved({"format": "textgym-generator-v1", "class": "os:system",
                           "kwargs": {"command": f"touch {marker}"}, "state_dict": {}, "vocab": None}))
    with pytest.raises(SystemExit, match="unknown generator class 'os:system'"):
        evaluate_main(["--generator", str(bad)])
    assert not marker.exists()
    # a known class with arguments that are not what it takes
    bad.write_bytes(saved({"format": "textgym-generator-v1", "class": "agents.generator:Generator",
                           "kwargs": {"vocab_size": "5000; rm -rf /", "max_length": 20, "eos_id": None, "emb_dim": 32,
                                      "hidden_dim": 32}, "state_dict": {}, "vocab": None}))
    with pytest.raises(SystemExit, match="vocab_size"):
        evaluate_main(["--generator", str(bad)])
