"""``python -m textgym.evaluate``: options that do not apply are refused, references the generator
cannot see as written are reported, and training curves survive a torn last line."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from agents.generator import Generator
from textgym.data import EOS, UNK, Vocab
from textgym.evaluate import export_generator
from textgym.evaluate import main as evaluate_main

pytestmark = pytest.mark.usefixtures("one_thread")


def generator_file(path, vocab_size, max_length, vocab=None):
    """A small generator file as train.py writes it (``vocab`` None: an oracle-benchmark generator)."""
    kwargs = dict(vocab_size=vocab_size, max_length=max_length, eos_id=0, emb_dim=4, hidden_dim=4)
    torch.save(export_generator(Generator(**kwargs), kwargs, vocab), path)
    return str(path)


def test_an_oracle_generator_refuses_the_options_of_text_against_references(tmp_path, capsys):
    gen = generator_file(tmp_path / "generator.pt", 5000, 20)  # the oracle benchmark's sizes
    (tmp_path / "refs.txt").write_text("a man rides a horse\n")
    with pytest.raises(SystemExit, match="synthetic oracle benchmark .* --references .* does not apply"):
        evaluate_main(["--generator", gen, "--references", str(tmp_path / "refs.txt")])
    with pytest.raises(SystemExit, match="--orders .* does not apply"):
        evaluate_main(["--generator", gen, "--orders", "2"])
    # the same for a samples file scored with --oracle
    (tmp_path / "ids.txt").write_text("1 2 3\n")
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path / "ids.txt"), "--oracle", "--references", str(tmp_path / "refs.txt")])
    assert "--references (text against references) does not apply" in capsys.readouterr().err


def test_references_outside_the_generators_vocabulary_or_length_are_reported(tmp_path):
    vocab = Vocab([EOS, UNK, "a", "b", "c"])
    gen = generator_file(tmp_path / "generator.pt", len(vocab), 4, vocab)
    refs = tmp_path / "refs.txt"
    refs.write_text("a b zz\na b c a b\n")  # 1 of 8 words unknown; the second is cut (5 words + <eos> > 4)
    out = tmp_path / "e.json"
    with pytest.warns(UserWarning, match=r"12\.5% of the words .* outside .* 1 of 2 references are longer"):
        assert evaluate_main(["--generator", gen, "--references", str(refs), "--n-samples", "20", "--orders", "2",
                              "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["references_unk_rate"] == 0.125 and result["references_truncated"] == 1
    refs.write_text("a b\nc a b\n")  # every word known, every reference fits: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate_main(["--generator", gen, "--references", str(refs), "--n-samples", "20", "--orders", "2",
                              "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["references_unk_rate"] == 0.0 and result["references_truncated"] == 0


def test_curves_skip_a_torn_last_line_and_name_a_corrupt_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = "".join(json.dumps({"iteration": i, "nll_oracle": 9.0 - i}) + "\n" for i in range(3))
    (run / "metrics.jsonl").write_text(rows + '{"iteration": 3, "nll_or')  # killed while writing
    with pytest.warns(UserWarning, match="metrics.jsonl line 4, the last, is incomplete"):
        assert evaluate_main(["--curves", str(run), "--plot", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    assert (run / "metrics.jsonl").read_text().endswith('"nll_or')  # the run folder is left as it is
    (run / "metrics.jsonl").write_text(rows.replace("}\n", "\n", 1) + rows)  # line 1 lost its brace
    with pytest.raises(SystemExit, match="metrics.jsonl line 1 is corrupt"):
        evaluate_main(["--curves", str(run), "--plot", str(tmp_path / "c.png")])


def test_a_uniform_generators_entropy_and_nll_test_are_log_v_and_bleu_uses_the_test_references(tmp_path):
    from textgym.bleu import bleu, self_bleu
    from textgym.data import Corpus
    from textgym.evaluate import evaluate_generator

    words = "a b c d e f g h".split()
    (tmp_path / "train.txt").write_text("\n".join(" ".join(words[i:i + 4]) for i in range(5)) + "\n")
    (tmp_path / "test.txt").write_text("h g f e\nd c b a\n")  # no sentence of the training set
    data = Corpus(tmp_path / "train.txt", tmp_path / "test.txt", max_length=6)
    gen = Generator(vocab_size=data.vocab_size, max_length=6, eos_id=data.eos_id, emb_dim=4, hidden_dim=4)
    with torch.no_grad():  # logits 0 everywhere: every token, <eos> included, has probability 1/V
        gen.out.weight.zero_()
        gen.out.bias.zero_()
    ev = evaluate_generator(gen, data, n_samples=200, bleu_samples=50, temperature=0.7)
    assert ev.metrics["entropy"] == pytest.approx(math.log(data.vocab_size), abs=1e-5)  # the closed form, ln V
    assert ev.metrics["nll_test"] == pytest.approx(math.log(data.vocab_size), abs=1e-5)
    hyps = [data.decode(r[: int(n)].tolist()).split() for r, n in zip(ev.tokens[:50], ev.lengths[:50])]
    refs = [s.split() for s in ("h g f e", "d c b a")]
    assert ev.metrics["bleu4"] == bleu(hyps, refs, 4) and ev.metrics["self_bleu4"] == self_bleu(hyps, 4)
    train_refs = [data.decode(r[: int(n)].tolist()).split() for r, n in zip(data.train, data.train_lengths)]
    assert bleu(hyps, train_refs, 4) != ev.metrics["bleu4"]  # the test split is what the metric reads

    # a generator that is not uniform: entropy is the mean NLL of its own samples and NLL-test that
    # of the test set, both at the sampling temperature (the uniform one gives ln V whatever is scored)
    torch.manual_seed(0)
    with torch.no_grad():
        gen.out.weight.normal_(0, 2.0)
        gen.out.bias.normal_(0, 1.0)

    def mean_nll(tokens, lengths, tau):
        lp = gen.log_probs(tokens, temperature=tau)
        total = sum(-float(lp[i, :n].sum()) for i, n in enumerate(lengths.tolist()))
        return total / int(lengths.sum())

    ev = evaluate_generator(gen, data, n_samples=200, bleu_samples=50, temperature=0.7)
    assert ev.metrics["entropy"] == pytest.approx(mean_nll(ev.tokens, ev.lengths, 0.7), rel=1e-5)
    assert ev.metrics["nll_test"] == pytest.approx(mean_nll(data.test, data.test_lengths, 0.7), rel=1e-5)
    assert abs(mean_nll(ev.tokens, ev.lengths, 1.0) - ev.metrics["entropy"]) > 0.01


def test_nll_test_known_leaves_out_the_test_words_outside_the_vocabulary(tmp_path):
    from textgym.data import UNK_ID, Corpus
    from textgym.evaluate import evaluate_generator

    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d a\n")
    (tmp_path / "test.txt").write_text("a zebra c\nd c b\n")  # 'zebra' is no training word: <unk>
    data = Corpus(tmp_path / "train.txt", tmp_path / "test.txt", max_length=5)
    gen = Generator(vocab_size=data.vocab_size, max_length=5, eos_id=data.eos_id, emb_dim=4, hidden_dim=4)
    metrics = evaluate_generator(gen, data, n_samples=20, bleu_samples=10).metrics
    nll, known = [], []  # a slow reference: one sequence at a time, position by position
    for row, n in zip(data.test, data.test_lengths):
        lp = gen.log_probs(row[None])[0].detach()
        for t in range(int(n)):
            nll.append(-float(lp[t]))
            if int(row[t]) != UNK_ID:
                known.append(-float(lp[t]))
    assert len(known) == len(nll) - 1  # one position is <unk>
    assert metrics["nll_test"] == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    assert metrics["nll_test_known"] == pytest.approx(sum(known) / len(known), rel=1e-5)
    (tmp_path / "test.txt").write_text("a b c\n")  # every test word known: no second figure
    data = Corpus(tmp_path / "train.txt", tmp_path / "test.txt", max_length=5)
    assert "nll_test_known" not in evaluate_generator(gen, data, n_samples=20, bleu_samples=10).metrics


def test_bleu_scores_against_the_test_sentences_as_written_so_a_generated_unk_matches_no_unknown_word(tmp_path):
    """The run's BLEU equals BLEU against the test file's words (as ``python -m textgym.evaluate
    --references`` reads them): a test word outside the vocabulary, encoded as ``<unk>``, used to
    match every generated ``<unk>``."""
    from textgym.bleu import bleu
    from textgym.data import UNK_ID, Corpus
    from textgym.evaluate import evaluate_generator

    (tmp_path / "train.txt").write_text("a b c\nb c d\nc d a\n")
    (tmp_path / "test.txt").write_text("a zebra c\nd a zebra\n")  # 'zebra' is no training word: <unk>
    data = Corpus(tmp_path / "train.txt", tmp_path / "test.txt", max_length=5)
    gen = Generator(vocab_size=data.vocab_size, max_length=5, eos_id=data.eos_id, emb_dim=4, hidden_dim=4)
    with torch.no_grad():  # mostly 'a' and <unk>: many 'a <unk>' bigrams
        gen.out.weight.zero_()
        gen.out.bias.zero_()
        gen.out.bias[UNK_ID], gen.out.bias[data.vocab.stoi["a"]] = 3.0, 3.0
    ev = evaluate_generator(gen, data, n_samples=100, bleu_samples=100, bleu_orders=(2,))
    hyps = [data.decode(r[: int(n)].tolist()).split() for r, n in zip(ev.tokens, ev.lengths)]
    assert sum(h.count("<unk>") for h in hyps) > 20
    as_written = [line.split() for line in (tmp_path / "test.txt").read_text().splitlines()]
    assert ev.metrics["bleu2"] == pytest.approx(bleu(hyps, as_written, 2), abs=1e-12)
    encoded = [data.decode(r[: int(n)].tolist()).split() for r, n in zip(data.test, data.test_lengths)]
    assert bleu(hyps, encoded, 2) > ev.metrics["bleu2"] + 0.05  # what the encoded references gave
    # one BLEU sample: a ValueError a caller (the study) can catch, not SystemExit (which ended a whole study)
    with pytest.raises(ValueError, match="Self-BLEU .* needs at least 2 samples, got 1"):
        evaluate_generator(gen, data, n_samples=10, bleu_samples=1)


def test_bad_options_are_refused_before_anything_is_evaluated(tmp_path, capsys):
    """Each with its reason and no traceback: a temperature of 0 was a ZeroDivisionError, a
    --json path in a missing folder failed after the evaluation ran (its results lost)."""
    vocab = Vocab([EOS, UNK, "a", "b", "c"])
    gen = generator_file(tmp_path / "generator.pt", len(vocab), 4, vocab)
    (tmp_path / "refs.txt").write_text("a b\n")
    common = ["--generator", gen, "--references", str(tmp_path / "refs.txt"), "--n-samples", "20", "--orders", "2"]
    for extra, said in ((["--temperatures", "0", "--frontier"], "--temperatures must be finite and >= 0.001"),
                        (["--temperatures", "inf", "--frontier"], "--temperatures must be finite and >= 0.001"),
                        (["--n-samples", "0"], "--n-samples must be >= 1"),
                        (["--orders", "0"], "--orders are n-gram orders >= 1"),
                        (["--json", str(tmp_path / "nodir" / "e.json")], "no folder"),
                        (["--plot", str(tmp_path / "f.png")], "add --frontier"),
                        (["--device", "gpu"], "is not a torch device")):
        with pytest.raises(SystemExit):
            evaluate_main([*common, *extra])
        assert said in capsys.readouterr().err
    (tmp_path / "samples.txt").write_text("a b\n")
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path / "samples.txt"), "--plot", str(tmp_path / "s.png")])
    assert "a samples file has nothing to plot" in capsys.readouterr().err
    for refs, said in (("nosuch.txt", "does not exist"), (str(tmp_path / "empty.txt"), "holds no sentences")):
        (tmp_path / "empty.txt").write_text("\n")
        with pytest.raises(SystemExit, match=said):
            evaluate_main(["--generator", gen, "--references", refs])


def test_a_run_folder_stands_for_its_generator_file_and_a_checkpoint_is_named_as_such(tmp_path):
    vocab = Vocab([EOS, UNK, "a", "b", "c"])
    generator_file(tmp_path / "generator.pt", len(vocab), 4, vocab)
    (tmp_path / "refs.txt").write_text("a b\nc a\n")
    out = tmp_path / "e.json"
    assert evaluate_main(["--generator", str(tmp_path), "--references", str(tmp_path / "refs.txt"), "--n-samples", "20",
                          "--orders", "2", "--json", str(out)]) == 0
    assert "bleu2" in json.loads(out.read_text())
    from agents.checkpoints import write_checkpoint

    write_checkpoint(tmp_path / "checkpoint.pt", {"format": "textgym-checkpoint"}, b"state")
    with pytest.raises(SystemExit, match="is a training checkpoint, not a generator file"):
        evaluate_main(["--generator", str(tmp_path / "checkpoint.pt")])


def test_a_data_directory_that_does_not_exist_is_a_clear_error(tmp_path, monkeypatch):
    import textgym.data

    monkeypatch.setattr(textgym.data, "_ORACLE_CACHE", {})
    monkeypatch.setenv("TEXTGYM_DATA", str(tmp_path / "nosuch"))
    (tmp_path / "ids.txt").write_text("1 2 3\n")
    with pytest.raises(SystemExit, match="error: TEXTGYM_DATA=.* is not a directory"):
        evaluate_main([str(tmp_path / "ids.txt"), "--oracle"])


def test_weights_that_do_not_fit_are_a_value_error_naming_the_difference():
    from discriminators.base import load_weights

    g = Generator(vocab_size=5, max_length=4, emb_dim=4, hidden_dim=4)
    state = g.state_dict()
    with pytest.raises(ValueError, match="not in this model: extra"):
        load_weights(g, {**state, "extra": torch.zeros(1)}, "the source")
    with pytest.raises(ValueError, match="the source does not fit this Generator"):
        load_weights(g, {**state, "out.bias": "not a tensor"}, "the source")
    load_weights(g, state, "the source")  # what fits loads


def test_self_bleu_of_one_sample_and_a_byte_order_mark_and_blank_oracle_lines(tmp_path, capsys):
    """One sample ended in a traceback from self_bleu (after the NLL work had run, with
    --generator); a byte-order mark made the first word another word; --oracle counted a blank
    line as a sample it did not score."""
    (tmp_path / "one.txt").write_text("a man rides\n")
    (tmp_path / "refs.txt").write_text("a man rides\n")
    with pytest.raises(SystemExit, match="Self-BLEU scores each sample against the others and needs at least 2"):
        evaluate_main([str(tmp_path / "one.txt"), "--references", str(tmp_path / "refs.txt")])
    assert evaluate_main([str(tmp_path / "one.txt"), "--references", str(tmp_path / "refs.txt"), "--metrics", "bleu",
                          "--orders", "2"]) == 0
    vocab = Vocab([EOS, UNK, "a", "b", "c"])
    gen = generator_file(tmp_path / "generator.pt", len(vocab), 4, vocab)
    with pytest.raises(SystemExit, match=r"scores each sample against the others: --n-samples must be >= 2"):
        evaluate_main(["--generator", gen, "--references", str(tmp_path / "refs.txt"), "--n-samples", "1"])
    (tmp_path / "bom.txt").write_bytes("\ufeffa man rides\n".encode())
    out = tmp_path / "b.json"
    assert evaluate_main([str(tmp_path / "bom.txt"), "--references", str(tmp_path / "refs.txt"), "--metrics", "bleu",
                          "--orders", "2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["bleu2"] == pytest.approx(1.0)  # was 0.77: '\ufeffa' is not 'a'
    (tmp_path / "ids.txt").write_text("1 2 3\n\n4 5 6\n")
    assert evaluate_main([str(tmp_path / "ids.txt"), "--oracle", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["samples"] == 2


def test_cli_fixes_samples_lines_vocabulary_size_plot_suffix_oracle_single_sample_and_run_label(tmp_path, monkeypatch):
    """A form feed split a sample in two; a generator file whose vocabulary list is shorter than
    its vocabulary decoded ids past it as nothing (BLEU 0); a bad --plot suffix failed after the
    whole evaluation; an oracle generator could not be scored on one sample (a Self-BLEU rule it
    does not use); a generator file given from inside its run folder had an empty label."""
    (tmp_path / "ff.txt").write_text("a man\x0crides\nthe dog\n")
    out = tmp_path / "r.json"
    assert evaluate_main([str(tmp_path / "ff.txt"), "--json", str(out), "--metrics", "self_bleu", "--orders", "2"]) == 0
    assert json.loads(out.read_text())["samples"] == 2
    vocab = Vocab([EOS, UNK, "a", "b", "c"])
    short = tmp_path / "short.pt"
    kwargs = dict(vocab_size=7, max_length=4, eos_id=0, emb_dim=4, hidden_dim=4)
    torch.save(export_generator(Generator(**kwargs), kwargs, vocab), short)
    (tmp_path / "refs.txt").write_text("a b c\nb c\n")
    with pytest.raises(SystemExit, match="its vocabulary lists 5 words but the generator has 7"):
        evaluate_main(["--generator", str(short), "--references", str(tmp_path / "refs.txt")])
    run = tmp_path / "run-a"
    run.mkdir()
    gen = generator_file(run / "generator.pt", len(vocab), 4, vocab)
    with pytest.raises(SystemExit):  # refused before anything is evaluated
        evaluate_main(["--generator", gen, "--references", str(tmp_path / "refs.txt"), "--frontier", "--plot",
                       str(tmp_path / "f.xyz")])
    assert not (tmp_path / "f.xyz").exists()
    monkeypatch.chdir(run)
    assert evaluate_main(["--generator", "generator.pt", "--references", str(tmp_path / "refs.txt"), "--frontier",
                          "--temperatures", "1.0", "--n-samples", "8", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["frontier"][0]["model"] == "run-a"
    oracle_gen = generator_file(tmp_path / "oracle.pt", 5000, 20)
    assert evaluate_main(["--generator", oracle_gen, "--n-samples", "1", "--json", str(out)]) == 0
    assert math.isfinite(json.loads(out.read_text())["nll_oracle"])


def test_evaluate_generator_refuses_a_test_size_of_zero_instead_of_scoring_every_sequence(small_oracle_data):
    from textgym.evaluate import evaluate_generator

    gen = Generator(small_oracle_data.vocab_size, small_oracle_data.max_length, emb_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="test_size must be >= 1 or None"):
        evaluate_generator(gen, small_oracle_data, n_samples=4, test_size=0)


def test_curves_refuses_the_options_it_would_ignore(tmp_path, monkeypatch):
    """--curves used to plot and silently drop a samples file, --json or --oracle."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 0, "nll_test": 8.0}\n{"iteration": 1, "nll_test": 7.5}\n')
    (tmp_path / "s.txt").write_text("a b\n")
    monkeypatch.chdir(tmp_path)
    for extra in (["s.txt"], ["--json", "r.json"], ["--oracle"], ["--orders", "2"], ["--n-samples", "9"]):
        with pytest.raises(SystemExit, match="2"):  # each refused for itself (with --plot given, it is the only reason)
            evaluate_main(["--curves", str(run), "--plot", "c.png", *extra])
    with pytest.raises(SystemExit):  # no --plot: it wrote ./curves.png, over any file of that name
        evaluate_main(["--curves", str(run)])
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "c.png").exists()
    assert evaluate_main(["--curves", str(run), "--plot", "c.png"]) == 0 and (tmp_path / "c.png").is_file()


def test_the_evaluate_cli_refuses_options_it_would_ignore_and_reads_samples_as_references(tmp_path, monkeypatch,
                                                                                         capsys):
    """Options that were silently ignored (--frontier on a samples file, --oracle with --generator,
    --metrics bleu without references); a samples file's final <eos> counted as a word (a file
    scored against itself got BLEU below 1); non-finite results made invalid JSON."""
    import json as json_module

    from textgym.evaluate import finite_or_null

    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.txt").write_text("a b c d e <eos>\nb c d e f <eos>\n")
    (tmp_path / "r.txt").write_text("a b c d e\nb c d e f\n")
    assert evaluate_main(["e.txt", "--references", "r.txt", "--orders", "4", "--metrics", "bleu",
                          "--json", "out.json"]) == 0
    assert json_module.loads((tmp_path / "out.json").read_text())["bleu4"] == 1.0
    for args, said in ((["e.txt", "--frontier"], "a samples file has none"),
                       (["e.txt", "--metrics", "bleu"], "give --references"),
                       (["--generator", "g.pt", "--oracle"], "--oracle scores a samples file")):
        with pytest.raises(SystemExit):
            evaluate_main(args)
        assert said in capsys.readouterr().err
    assert evaluate_main(["e.txt"]) == 0
    assert "note: BLEU needs --references" in capsys.readouterr().err
    assert finite_or_null({"a": [float("inf"), 1.0], "b": float("nan")}) == {"a": [None, 1.0], "b": None}


def test_the_evaluate_cli_refuses_labelled_files_and_its_one_sample_hint_works(tmp_path, monkeypatch):
    """A class-conditional run's samples (label<TAB>sentence) were scored with their labels as
    words; a one-line samples file without references was told to use --metrics bleu, which is
    then refused for want of references."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l.txt").write_text("pos\ta good film\nneg\ta bad film\n")
    (tmp_path / "r.txt").write_text("a good film\na bad film\n")
    (tmp_path / "one.txt").write_text("a good film\n")
    for args, said in ((["l.txt", "--references", "r.txt"], "samples file l.txt holds 'label<TAB>sentence' lines"),
                       (["r.txt", "--references", "l.txt"], "references file l.txt holds 'label<TAB>sentence' lines"),
                       (["one.txt"], "or score BLEU alone: --references and --metrics bleu")):
        with pytest.raises(SystemExit, match=said):
            evaluate_main(args)
    assert evaluate_main(["one.txt", "--references", "r.txt", "--metrics", "bleu"]) == 0
