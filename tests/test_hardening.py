"""Files are data, never code: a checkpoint or generator file whose unpickling would run code is
refused without running it, and a generator file can only name a known class."""
from __future__ import annotations

import hashlib
import json
import io
import time

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


def test_resume_and_warm_start_refuse_a_corpus_that_changed(tmp_path, capsys):
    """The checkpoint records hashes of the training data and vocabulary: the same path with other
    content would silently give every token id another word."""
    lines = [f"the {w} sat on the mat number {i % 7}" for i, w in enumerate(["cat", "dog", "bird", "fox"] * 40)]
    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(lines) + "\n")
    args = ["--agent", "mle", "--budget", "smoke", "--data", str(corpus), "--mle-epochs", "2"]
    assert run(tmp_path, *args, "--stop-after", "1") == 0
    corpus.write_text("\n".join(line.replace("cat", "cow") for line in lines) + "\n")  # same size, other words
    capsys.readouterr()
    assert run(tmp_path, *args, "--resume") == 2
    err = capsys.readouterr().err
    assert "resume refused" in err and "vocabulary" in err and str(corpus) in err
    corpus.write_text("\n".join(lines) + "\n")  # the original content resumes
    test = tmp_path / "test.txt"
    test.write_text("the cat sat on the mat\n")
    tested = ["--test-data", str(test), "--out", str(tmp_path / "tested"), "--quiet"]
    assert train.main([*args, *tested, "--stop-after", "1"]) == 0
    test.write_text("the dog sat on the mat\n")  # NLL-test and BLEU would mix two test sets
    capsys.readouterr()
    assert train.main([*args, *tested, "--resume"]) == 2
    assert "resume refused: the test data" in capsys.readouterr().err
    test.write_text("the cat sat on the rug\n")  # "rug" and "hat" are no training words: the same tokens (<unk>)...
    tested = ["--test-data", str(test), "--out", str(tmp_path / "unk"), "--quiet"]
    assert train.main([*args, *tested, "--stop-after", "1"]) == 0
    test.write_text("the cat sat on the hat\n")  # ...but BLEU's references read the words
    capsys.readouterr()
    assert train.main([*args, *tested, "--resume"]) == 2
    assert "resume refused: the BLEU references of" in capsys.readouterr().err
    assert run(tmp_path, *args, "--resume") == 0
    other = tmp_path / "other.txt"
    other.write_text("\n".join(line.replace("dog", "ant") for line in lines) + "\n")
    capsys.readouterr()
    assert train.main(["--agent", "seqgan", "--budget", "smoke", "--data", str(other), "--init-from",
                       str(tmp_path / "run"), "--out", str(tmp_path / "warm"), "--quiet"]) == 2
    assert "warm start refused" in capsys.readouterr().err


def test_a_resume_on_relabelled_sentences_and_a_warm_start_on_renamed_classes_are_refused(tmp_path):
    """Class-labelled data: the same sentences under other labels hashed like the original (only
    tokens and vocabulary were), so a resume trained each class on another class's sentences."""
    from agents.checkpoints import RunError, check_same_data, data_fingerprint
    from agents.config import RunConfig
    from textgym.classes import LabelledCorpus
    from textgym.data import Corpus

    lines = [(("pos", "neg")[i % 2], f"the {w} sat on the mat") for i, w in enumerate(["cat", "dog", "fox"] * 4)]
    original, relabelled = tmp_path / "a.txt", tmp_path / "b.txt"
    original.write_text("".join(f"{c}\t{t}\n" for c, t in lines))
    relabelled.write_text("".join(f"{'pos' if c == 'neg' else 'neg'}\t{t}\n" for c, t in lines))
    a, b = LabelledCorpus(original), LabelledCorpus(relabelled)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train_labels, b.train_labels)
    header, ckpt = {"data": data_fingerprint(a)}, tmp_path / "checkpoint.pt"
    check_same_data(ckpt, header, LabelledCorpus(original), RunConfig(), "resume", classes=True)
    with pytest.raises(RunError, match="resume refused: the class labels of .* differ from"):
        check_same_data(ckpt, header, b, RunConfig(), "resume", classes=True)
    check_same_data(ckpt, header, b, RunConfig(), "warm start", classes=True)  # ids still mean the same classes
    renamed = tmp_path / "c.txt"  # neg -> zzz: class 0 is now pos, so generator 0 would write the other class
    renamed.write_text(original.read_text().replace("neg\t", "zzz\t"))
    with pytest.raises(RunError, match="warm start refused: the class names of .* differ from .* class ids would mean"):
        check_same_data(ckpt, header, LabelledCorpus(renamed), RunConfig(), "warm start", classes=True)
    # an agent that ignores the labels (seqgan on a labelled file) resumes and warm starts as before
    check_same_data(ckpt, header, b, RunConfig(), "resume")
    check_same_data(ckpt, header, LabelledCorpus(renamed), RunConfig(), "warm start")
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{t}\n" for _, t in lines))
    check_same_data(ckpt, {"data": data_fingerprint(Corpus(plain))}, a, RunConfig(), "warm start")


def test_envs_with_the_same_seed_score_a_corpus_alike(tmp_path):
    """The default discriminator of a corpus env is initialized from the env's seed, not the global RNG."""
    from textgym.env import TokenVecEnv

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"a b c {w} d" for w in ["x", "y", "z", "w"] * 10) + "\n")
    tokens = torch.tensor([[2, 3, 4, 0, 5, 5, 5]])

    def logits(seed):
        env = TokenVecEnv(2, data=str(corpus), seed=seed)
        return env.scorer.score(tokens[:, : env.max_length], torch.tensor([4]))

    assert torch.equal(logits(7), logits(7)) and not torch.equal(logits(7), logits(8))


def test_stale_partial_writes_are_removed_and_stop_after_zero_is_refused(tmp_path, oracle_data, capsys):
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--stop-after", "0") == 2
    assert "--stop-after must be >= 1" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "2", "--stop-after", "1") == 0
    stale = tmp_path / "run" / ".checkpoint.pt.tmp-99999"  # what a kill -9 during a checkpoint write leaves
    stale.write_bytes(b"\0" * 1000)
    stale_samples = tmp_path / "run" / "samples" / ".iter_00001.txt.tmp-99999"  # or during a samples file's
    stale_samples.write_bytes(b"\0" * 10)
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "2", "--resume") == 0
    assert not stale.exists() and not stale_samples.exists()


def test_a_failed_checkpoint_write_stops_the_run_with_its_error(tmp_path, oracle_data, monkeypatch, capsys):
    """Checkpoints are written on a background thread; a write that fails (a full disk, say)
    still stops the run with its error, and the file on disk stays the last whole checkpoint."""
    import agents.checkpoints as checkpoints

    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "3", "--stop-after", "1") == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert checkpoints.read_checkpoint(ckpt)[0]["iteration"] == 1
    real_write = checkpoints.atomic_write_bytes

    def full_disk(path, payload):
        if path.name == "checkpoint.pt":
            raise OSError(28, "No space left on device")
        real_write(path, payload)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", full_disk)
    capsys.readouterr()
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "3", "--resume") == 2
    err = capsys.readouterr().err
    assert "could not write the checkpoint" in err and "No space left" in err
    assert checkpoints.read_checkpoint(ckpt)[0]["iteration"] == 1
    def slow_disk(path, payload):
        time.sleep(0.5)  # slower than an MLE epoch here: the run must wait for its last write
        real_write(path, payload)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", slow_disk)
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "3", "--resume") == 0
    assert checkpoints.read_checkpoint(ckpt)[0]["iteration"] == 3  # the last iteration's, written before the run returned


# ---------------------------------------------------------------------- env inputs
@pytest.fixture(scope="module")
def small_env_data():
    from textgym.data import OracleData
    from textgym.oracle import OracleLSTM

    return OracleData(OracleLSTM(vocab_size=20, max_length=5, seed=0), max_length=5, n_train=64, n_test=32)


@pytest.mark.parametrize("kwargs,match", [
    ({"autoreset_mode": None}, "autoreset_mode must be one of"),
    ({"autoreset_mode": 123}, "autoreset_mode must be one of"),
    ({"autoreset_mode": "sometimes"}, "autoreset_mode must be one of"),
    ({"num_envs": 1.5}, "num_envs must be an integer >= 1, got 1.5"),
    ({"num_envs": "3"}, "num_envs must be an integer >= 1, got '3'"),
    ({"max_length": 0}, "max_length must be an integer >= 1"),
    ({"seed": 2**64}, r"seed must be an integer in \[0, 2\*\*64\)"),
])
def test_bad_env_arguments_are_named(small_env_data, kwargs, match):
    from textgym.env import TokenVecEnv

    with pytest.raises(ValueError, match=match):
        TokenVecEnv(**{"num_envs": 2, "data": small_env_data, **kwargs})


@pytest.mark.parametrize("options,match", [
    ({"prefix": [[1.0, 3.7], [2, 2]]}, r"options\['prefix'\]\[0\] must hold integer token ids, got 1.0"),
    ({"prefix": [[True], [2]]}, "must hold integer token ids, got True"),
    ({"prefix": [[None], [2]]}, "must hold integer token ids, got None"),
    ({"prefix": [[1], [2]], "prefix_lengths": [1, 1]}, "applies to a padded"),
    ({"prefix": torch.tensor([[1.0, 3.7], [2.0, 2.0]])}, r"options\['prefix'\] must be integers"),
    ({"prefix": torch.tensor([[1, 3], [2, 2]]), "prefix_lengths": [2.5, 1]}, r"prefix_lengths'\] must be integers"),
    ({"reset_mask": [2, 1]}, r"reset_mask'\] must be booleans"),
    ({"reset_mask": [0.5, 1.0]}, r"reset_mask'\] must be booleans"),
])
def test_reset_options_are_checked_as_strictly_as_step(small_env_data, options, match):
    from textgym.env import TokenVecEnv

    env = TokenVecEnv(2, data=small_env_data, seed=0)
    with pytest.raises(ValueError, match=match):
        env.reset(options=options)
    with pytest.raises(ValueError, match=r"seed must be an integer"):
        env.reset(seed=2**64)


def test_actions_of_any_integer_dtype_work_and_infinite_ones_are_named(small_env_data):
    import numpy as np

    from textgym.env import TokenVecEnv

    env = TokenVecEnv(2, data=small_env_data, seed=0)
    env.reset()
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int32):
        env.step(np.array([3, 4], dtype=dtype))
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.inf, 1.0]))
    env.reset(options={"reset_mask": [True, False]})
    env.reset(options={"reset_mask": np.array([1, 0])})


# ---------------------------------------------------------------------- small ones
def test_a_samples_file_that_is_not_utf8_is_named(tmp_path):
    from textgym.evaluate import main as evaluate_main

    bad = tmp_path / "samples.txt"
    bad.write_bytes(b"a good line\n\xff\xfe broken\n")
    with pytest.raises(SystemExit, match="is not UTF-8 text"):
        evaluate_main([str(bad)])


def test_an_oracle_file_with_an_object_array_is_named(tmp_path):
    import numpy as np

    from textgym.oracle import ORACLE_KEYS, OracleLSTM

    path = tmp_path / "oracle.npz"
    arrays = {k: np.zeros((2, 2), dtype=np.float32) for k in ORACLE_KEYS}
    arrays[ORACLE_KEYS[0]] = np.array(["not", "numbers"])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"oracle file '{path}' holds an array that is not numeric"):
        OracleLSTM.from_npz(path)


def test_a_module_discriminator_without_sizes_gets_a_clear_error(small_env_data):
    import agents

    class Bare(torch.nn.Module):
        is_probabilistic = True
        vocab_size = 20

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, tokens, lengths=None):
            return self.w.expand(tokens.shape[0])

    with pytest.raises(ValueError, match=r"lacks \['max_length'\]"):
        agents.make("seqgan", small_env_data, {"discriminator": Bare(), "mle_epochs": 0})


@pytest.mark.parametrize("args", [
    ["--agent", "seqgan", "--d-lr", "1e30"],                 # the discriminator diverges
    ["--agent", "ppo", "--learning-rate", "1e30"],           # the SB3 policy diverges
])
def test_divergence_anywhere_ends_cleanly_with_the_metrics_so_far(tmp_path, oracle_data, capsys, args):
    assert run(tmp_path, *args, "--budget", "smoke") == 3
    err = capsys.readouterr().err
    assert "training diverged" in err
    if (tmp_path / "run" / "checkpoint.pt").is_file():
        assert "the last good checkpoint is" in err
    else:  # it named a checkpoint file that did not exist
        assert "no checkpoint was written before it" in err
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert rows and (tmp_path / "run" / "metrics.csv").is_file()


def test_one_huge_line_does_not_set_the_width_of_a_corpus(tmp_path):
    from textgym.data import Corpus

    path = tmp_path / "c.txt"
    normal = [" ".join(["w"] * (5 + i % 7)) for i in range(80)]
    path.write_text("\n".join(normal + [" ".join(["x"] * 200_000)]) + "\n")
    with pytest.warns(UserWarning, match="1 of 81 sentences .* have more than max_length - 1 = 63 words .*truncated"):
        c = Corpus(path)
    assert c.max_length == 64 and c.n_long == 1 and c.train.shape == (81, 64)
    with pytest.warns(UserWarning, match="dropped"):
        d = Corpus(path, max_length=20, long_sentences="drop")
    assert d.train.shape == (80, 20)


# ---------------------------------------------------------------------- the env against a reference model
@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_random_action_and_reset_sequences_match_a_reference_model(tmp_path, mode):
    """A seeded property test: random actions (every integer dtype the API takes), random partial
    resets with random prefixes, on a corpus with <eos>; the env's observations, terminations and
    zero rewards before the end must match a plain-Python model of the episode rules."""
    import numpy as np

    from textgym.env import TokenVecEnv

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"a b c d {w}" for w in "pqrstu") + "\n")
    rng = np.random.default_rng(0)
    for trial in range(4):
        N = int(rng.integers(1, 6))
        env = TokenVecEnv(N, data=str(corpus), discriminator="constant", autoreset_mode=mode, seed=trial)
        V, L, eos, pad = env.vocab_size, env.max_length, env.eos_id, env.pad_id
        seqs: list = [[] for _ in range(N)]
        done = [False] * N
        obs, _ = env.reset()
        for _ in range(150):
            if rng.random() < 0.1:  # a partial reset, some envs from a prefix
                mask = rng.random(N) < 0.5
                prefixes = [[int(x) for x in rng.integers(1, V, size=int(rng.integers(0, L - 1)))] for _ in range(N)]
                obs, _ = env.reset(options={"reset_mask": mask, "prefix": prefixes})
                for i in range(N):
                    if mask[i]:
                        seqs[i], done[i] = list(prefixes[i]), False
            else:
                actions = rng.integers(0, V, size=N).astype(rng.choice([np.int64, np.int32, np.uint16]))
                obs, rewards, term, trunc, infos = env.step(actions)
                for i in range(N):
                    if done[i] and mode == "next_step":  # this step only resets env i
                        seqs[i], done[i] = [], False
                        assert not term[i] and float(rewards[i]) == 0.0
                        continue
                    seqs[i].append(int(actions[i]))
                    ended = len(seqs[i]) >= L or int(actions[i]) == eos
                    assert bool(term[i]) == ended and not bool(trunc[i])
                    if not ended:
                        assert float(rewards[i]) == 0.0
                    if ended and mode == "same_step":
                        final = [*seqs[i], *[pad] * (L - len(seqs[i]))]
                        assert infos["final_obs"][i].tolist() == final
                        seqs[i] = []
                    done[i] = ended
            for i in range(N):
                assert obs[i].tolist() == [*seqs[i], *[pad] * (L - len(seqs[i]))], (trial, i)


def test_exploding_metrics_warn(tmp_path, oracle_data):
    with pytest.warns(RuntimeWarning, match="far above a uniform model's .* probably diverged"):
        rc = run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-lr", "1e6")
    assert rc in (0, 3)


def test_every_metrics_row_is_on_disk_before_the_checkpoint_that_counts_it(tmp_path, oracle_data, monkeypatch):
    """The checkpoint is fsynced; a metrics row only appended could be lost by an OS crash while
    the checkpoint counting it survived (the curves of those iterations gone)."""
    import os

    import agents.checkpoints as checkpoints

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("names the fsynced files through /proc (Linux)")
    synced: list = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def write_checkpoint(path, header, body):
        rows = (path.parent / "metrics.jsonl").read_text().count("\n")
        assert rows == header["metrics_rows"]
        last_metrics_sync = max(i for i, name in enumerate(synced) if name.endswith("metrics.jsonl"))
        assert synced.count(synced[last_metrics_sync]) >= header["metrics_rows"]  # one fsync per row added
        real_write(path, header, body)

    real_write = checkpoints.write_checkpoint
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(checkpoints, "write_checkpoint", write_checkpoint)
    assert run(tmp_path, "--agent", "mle", "--budget", "smoke", "--mle-epochs", "2") == 0
    assert any(name.endswith("metrics.jsonl") for name in synced)


def test_two_threads_writing_one_file_atomically_do_not_collide(tmp_path):
    """The background checkpoint writer and a study recording a warning run in one process: a
    temporary name per process only made one thread rename the other's file away (FileNotFoundError)."""
    import threading

    from textgym.paths import atomic_write_json

    errors = []

    def write(i):
        try:
            for k in range(300):
                atomic_write_json(tmp_path / "w.json", {"thread": i, "k": k})
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and json.loads((tmp_path / "w.json").read_text())["k"] == 299
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_atomic_writes_keep_a_symbolic_link_and_write_into_a_pipe(tmp_path):
    """The rename replaced a link by a file (its target kept the old content) and a named pipe by
    a file (its reader waited for ever): `--json /dev/stdout` or a link into another folder."""
    import os
    import threading

    from textgym.paths import atomic_write_bytes

    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_bytes(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"] and not fifo.is_file()


def test_an_interrupted_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C during config.json's write left only its temporary file: the folder was then neither
    a run to resume nor empty, and a study failed that cell at every rerun."""
    import os

    from textgym.paths import atomic_write_bytes

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "config.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_or_sigterm_during_a_stop_is_ignored_until_the_block_ends():
    """A second Ctrl-C during the orderly stop (the checkpoint in flight) aborted the process."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as a fresh process has
    try:
        _stop_twice(before)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_twice(before):
    import os
    import signal

    from agents.checkpoints import Terminated, sigterm_stops

    for first in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(KeyboardInterrupt) as stopped:
            with sigterm_stops():
                try:
                    os.kill(os.getpid(), first)
                    time.sleep(1)  # the handler raises at the next bytecode
                finally:
                    for second in (signal.SIGINT, signal.SIGTERM):  # during the cleanup: nothing happens
                        os.kill(os.getpid(), second)
                        time.sleep(0.05)
        assert isinstance(stopped.value, Terminated) == (first == signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # both restored
        assert signal.getsignal(signal.SIGTERM) == before


def test_a_checkpoint_whose_body_was_replaced_is_refused_by_the_bodys_checksum(tmp_path):
    """K2: the body's SHA-256 is checked. The suite's corrupt checkpoints are a changed header (its own
    checksum) and a truncated file (unreadable): a body that still unpickles but is not the one the
    header was written for loaded without a word."""
    import io

    from agents.checkpoints import RunError, read_checkpoint, write_checkpoint

    def saved(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    header = {"format": "textgym-checkpoint-v1", "agent": "mle", "config": {}, "iteration": 1, "metrics_rows": 2}
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, header, saved({"agent": {"iteration": 1, "w": torch.zeros(3)}}))
    assert torch.equal(read_checkpoint(path)[1]["w"], torch.zeros(3))
    outer = torch.load(path, weights_only=True)
    other = saved({"agent": {"iteration": 1, "w": torch.ones(3)}})  # the header (and its checksum) kept
    torch.save({**outer, "body": torch.frombuffer(bytearray(other), dtype=torch.uint8)}, path)
    with pytest.raises(RunError, match=r"corrupt \(its checksum does not match\)"):
        read_checkpoint(path)


def test_a_warm_start_on_the_same_words_in_another_id_order_is_refused(tmp_path):
    """DF1: the vocabulary's fingerprint covers the order of its words (the ids): two corpora of the
    same words at other frequencies number them differently, and a generator warm started across
    them would write every word as another. The suite changed a word (cat -> cow), never the order."""
    from agents.checkpoints import RunError, check_same_data, data_fingerprint
    from agents.config import RunConfig
    from textgym.data import Corpus

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the cat sat\nthe cat ran\nthe dog sat\n")
    b.write_text("the dog sat\nthe dog ran\nthe cat sat\n")
    ca, cb = Corpus(a), Corpus(b)
    assert sorted(ca.vocab.itos) == sorted(cb.vocab.itos) and ca.vocab.itos != cb.vocab.itos
    header = {"data": data_fingerprint(ca)}
    check_same_data(tmp_path / "checkpoint.pt", header, Corpus(a), RunConfig(), "warm start")
    with pytest.raises(RunError, match="warm start refused: the vocabulary of .* token ids would mean other words"):
        check_same_data(tmp_path / "checkpoint.pt", header, cb, RunConfig(), "warm start")
