"""The oracle loader and sampler, and the corpus loader."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import need_data

from textgym.data import EOS_ID, UNK_ID, Corpus, OracleData, Vocab, corpus_files, read_lines, resolve_data
from textgym.oracle import ORACLE_KEYS, OracleLSTM


def numpy_oracle_logprobs(path, tokens: np.ndarray) -> np.ndarray:
    """A slow, literal reimplementation of the SeqGAN target LSTM (separate gate matrices)."""
    a = np.load(path)
    p = [a[k].astype(np.float64) for k in ORACLE_KEYS]
    emb, Wi, Ui, bi, Wf, Uf, bf, Wog, Uog, bog, Wc, Uc, bc, Wo, bo = p
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    out = np.zeros(tokens.shape)
    for n, seq in enumerate(tokens):
        h = np.zeros(Wi.shape[1]); c = np.zeros(Wi.shape[1]); prev = 0
        for t, tok in enumerate(seq):
            x = emb[prev]
            i = sig(x @ Wi + h @ Ui + bi); f = sig(x @ Wf + h @ Uf + bf); o = sig(x @ Wog + h @ Uog + bog)
            c = f * c + i * np.tanh(x @ Wc + h @ Uc + bc); h = o * np.tanh(c)
            logits = h @ Wo + bo
            out[n, t] = logits[tok] - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
            prev = tok
    return out


def test_oracle_matches_literal_equations(device):
    """Sampled and scored on ``device``, against a float64 numpy reference."""
    path = need_data("oracle_lstm", "target_params.npz")
    oracle = OracleLSTM.from_npz(path).to(device)
    tokens = oracle.sample(5, generator=torch.Generator(device=device).manual_seed(0))
    lp = oracle.log_probs(tokens)
    assert tokens.device.type == lp.device.type == device.type
    np.testing.assert_allclose(lp.cpu().numpy(), numpy_oracle_logprobs(path, tokens.cpu().numpy()), atol=2e-4)


def test_oracle_entropy_rate(oracle_data, device):
    # The oracle's own samples score about 5.74 nats/token (its entropy rate).
    oracle = oracle_data.oracle_on(device)
    assert oracle.nll(oracle_data.test) == pytest.approx(5.74, abs=0.05)
    assert oracle.nll(oracle_data.train.to(device)) == pytest.approx(5.74, abs=0.05)
    uniform = torch.randint(0, 5000, (500, 20), generator=torch.Generator(device=device).manual_seed(0), device=device)
    assert oracle.nll(uniform) > 10.0


def test_oracle_dataset_is_reproducible_and_disjoint(oracle_data):
    o = oracle_data.oracle
    assert torch.equal(o.sample_dataset(300, seed=7), o.sample_dataset(300, seed=7))
    assert torch.equal(OracleData(o, n_train=300, n_test=10).train, o.sample_dataset(300, seed=88))
    assert not torch.equal(oracle_data.train[:100], oracle_data.test[:100])
    assert oracle_data.train.shape == (10_000, 20) and oracle_data.test.shape == (5_000, 20)


def test_oracle_sampling_seeded_and_temperature(device):
    oracle = OracleLSTM(vocab_size=200, max_length=10, seed=1).to(device)
    a = oracle.sample(64, generator=torch.Generator(device=device).manual_seed(5))
    b = oracle.sample(64, generator=torch.Generator(device=device).manual_seed(5))
    assert torch.equal(a, b) and a.device.type == device.type
    cold = oracle.sample(400, temperature=0.5, generator=torch.Generator(device=device).manual_seed(1))
    hot = oracle.sample(400, temperature=1.5, generator=torch.Generator(device=device).manual_seed(1))
    assert oracle.nll(cold) < oracle.nll(a) < oracle.nll(hot)


def test_oracle_rollout_keeps_prefixes(device):
    oracle = OracleLSTM(vocab_size=100, max_length=8, seed=2).to(device)
    tokens = torch.randint(0, 100, (6, 8), generator=torch.Generator().manual_seed(0)).to(device)
    plen = torch.tensor([0, 1, 3, 5, 7, 8], device=device)
    out = oracle.rollout(tokens, plen, generator=torch.Generator(device=device).manual_seed(0))
    assert out.device.type == device.type
    for i, p in enumerate(plen.tolist()):
        assert torch.equal(out[i, :p], tokens[i, :p])
    assert torch.equal(out[5], tokens[5])
    assert not torch.equal(out[0], tokens[0])


def test_oracle_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OracleLSTM.from_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        OracleLSTM.from_npz(tmp_path / "junk.npz")
    marked = {k: np.zeros(1, np.float32) for k in ORACLE_KEYS}
    marked["00_g_embeddings"] = np.full((10, 4), 1234.5, np.float32)
    np.savez(tmp_path / "crc.npz", **marked)
    raw = bytearray((tmp_path / "crc.npz").read_bytes())
    raw[raw.find(np.float32(1234.5).tobytes()) + 1] ^= 0xFF  # one byte of a stored array: its CRC-32 fails
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="crc.npz' is damaged: Bad CRC-32"):  # was a zipfile.BadZipFile traceback
        OracleLSTM.from_npz(tmp_path / "crc.npz")
    import zipfile

    np.savez_compressed(tmp_path / "z.npz", **{**marked, "00_g_embeddings": np.random.default_rng(0).random((50, 40))})
    with zipfile.ZipFile(tmp_path / "z.npz") as z:
        info = z.getinfo("00_g_embeddings.npy")
    raw = bytearray((tmp_path / "z.npz").read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 50] ^= 0xFF  # inside the deflated stream
    (tmp_path / "z.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="z.npz' is damaged"):  # a zlib.error traceback
        OracleLSTM.from_npz(tmp_path / "z.npz")
    np.savez(tmp_path / "few.npz", **{"00_g_embeddings": np.zeros((10, 4), np.float32)})
    with pytest.raises(ValueError, match="lacks arrays"):
        OracleLSTM.from_npz(tmp_path / "few.npz")
    good = OracleLSTM(vocab_size=10, emb_dim=4, hidden_dim=3)
    arrays = {k: np.zeros(1, np.float32) for k in ORACLE_KEYS}
    arrays.update({"00_g_embeddings": np.zeros((10, 4), np.float32), "02_Ui": np.zeros((3, 3), np.float32)})
    np.savez(tmp_path / "shapes.npz", **arrays)
    with pytest.raises(ValueError, match="has shape"):
        OracleLSTM.from_npz(tmp_path / "shapes.npz")
    del good


def test_oracle_fallback_without_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TEXTGYM_DATA", str(tmp_path))
    oracle = OracleLSTM.load(seed=0)
    notice = capsys.readouterr().err
    assert "not comparable" in notice and f"not found in {tmp_path}" in notice  # the directory searched
    assert oracle.vocab_size == 5000 and oracle.source.startswith("freshly initialized")
    same = OracleLSTM.load(seed=0, quiet=True)
    assert torch.equal(oracle.Wo, same.Wo)


def test_a_data_directory_that_does_not_exist_is_an_error_not_a_fresh_oracle(monkeypatch, tmp_path, capsys):
    """A mistyped TEXTGYM_DATA fell back to a freshly initialized oracle with only a notice."""
    import train

    import textgym.data

    monkeypatch.setattr(textgym.data, "_ORACLE_CACHE", {})  # an earlier test's oracle would be reused
    monkeypatch.setenv("TEXTGYM_DATA", str(tmp_path / "nosuch"))
    with pytest.raises(FileNotFoundError, match="TEXTGYM_DATA=.*nosuch is not a directory"):
        OracleLSTM.load(seed=0)
    assert train.main(["--agent", "mle", "--budget", "smoke", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "is not a directory" in capsys.readouterr().err and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- corpora
def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_corpus_vocabulary_and_encoding(tmp_path):
    train = write(tmp_path, "train.txt", "the cat sat\nthe dog sat down\n\nthe cat\n")
    test = write(tmp_path, "test.txt", "the bird sat\n")
    c = Corpus(train, test, min_count=2)
    assert c.vocab.itos[:2] == ["<eos>", "<unk>"]
    assert c.vocab.itos[2:] == ["the", "cat", "sat"]  # by count, then alphabetical; 'dog', 'down' < min_count
    assert c.pad_id == c.vocab_size == 5 and c.eos_id == EOS_ID
    assert c.max_length == 5  # longest sentence (4 words) + <eos>
    assert c.train.shape == (3, 5)  # the blank line is skipped
    assert c.train[1].tolist() == [2, UNK_ID, 4, UNK_ID, EOS_ID]
    assert c.train[0].tolist() == [2, 3, 4, EOS_ID, c.pad_id] and c.train_lengths.tolist() == [4, 5, 3]
    assert c.test[0].tolist()[:4] == [2, UNK_ID, 4, EOS_ID]
    assert c.decode(c.train[0]) == "the cat sat"


def test_corpus_long_sentences_truncate_or_drop(tmp_path):
    train = write(tmp_path, "t.txt", "a b c d e f\na b\n")
    t = Corpus(train, max_length=4, long_sentences="truncate")
    assert t.train_lengths.tolist() == [4, 3]
    assert EOS_ID not in t.train[0].tolist()  # truncated: no <eos>
    d = Corpus(train, max_length=4, long_sentences="drop")
    assert d.train_lengths.tolist() == [3]
    with pytest.raises(ValueError, match="long_sentences"):
        Corpus(train, long_sentences="cut")


def test_corpus_lowercase(tmp_path):
    c = Corpus(write(tmp_path, "t.txt", "The the THE\n"), lowercase=True)
    assert c.vocab.itos == ["<eos>", "<unk>", "the"]


def test_corpus_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Corpus(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="no sentences"):
        Corpus(write(tmp_path, "empty.txt", "\n  \n"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        Corpus(write(tmp_path, "latin.txt", "café crème\n", encoding="latin-1"))
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])


def test_real_corpus_loads():
    train = need_data("coco", "image_coco.txt")
    c = Corpus(train, need_data("coco", "test_coco.txt"))
    assert c.train.shape[0] == 10_000 and c.test.shape[0] == 10_000
    assert (c.train_lengths <= c.max_length).all()
    assert c.decode(c.train[0]).split() == train.read_text().splitlines()[0].split()


def test_resolve_data_errors():
    with pytest.raises(TypeError, match="data must be"):
        resolve_data(3.5)


def test_a_named_corpus_is_its_files_with_their_test_split():
    train, test = need_data("coco", "image_coco.txt"), need_data("coco", "test_coco.txt")
    assert corpus_files("coco") == (train, test)
    c = resolve_data("coco")
    by_path = Corpus(train, test)
    assert torch.equal(c.train, by_path.train) and torch.equal(c.test, by_path.test)
    assert c.vocab.itos == by_path.vocab.itos


def test_a_named_corpus_without_its_files_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGYM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"coco/image_coco.txt and coco/test_coco.txt in the data directory"):
        resolve_data("coco")
    with pytest.raises(ValueError, match="unknown corpus name 'cocoa'"):
        corpus_files("cocoa")


def test_oracle_row_chunking_changes_no_draw_and_no_score(monkeypatch):
    """On CPU the oracle samples and scores in row chunks; the chunk size must not change a
    single draw (one uniform per row per step, drawn for the whole batch) or score."""
    import textgym.sampling as sampling_module

    oracle = OracleLSTM(vocab_size=60, max_length=7, seed=2)
    results = []
    for chunk in (None, 7, 16):
        monkeypatch.setattr(sampling_module, "row_chunk", lambda n_cols, device, c=chunk: c)
        monkeypatch.setattr(OracleLSTM, "LOG_PROB_ROWS", 7 * (chunk or 1000))
        tokens = oracle.sample(50, generator=torch.Generator().manual_seed(4))
        prefix = oracle.rollout(tokens, torch.arange(50) % 7, generator=torch.Generator().manual_seed(5))
        results.append((tokens, prefix, oracle.log_probs(tokens)))
    for tokens, prefix, lp in results[1:]:
        assert torch.equal(tokens, results[0][0]) and torch.equal(prefix, results[0][1])
        torch.testing.assert_close(lp, results[0][2], rtol=1e-6, atol=1e-5)  # GEMM blocking rounds differently


def test_oracle_fused_hidden_states_follow_the_cell(device):
    """log_probs reads the hidden states from torch's fused LSTM (cuDNN's on CUDA); sampling
    steps ``cell``: the two must be the same recurrence (gate order included)."""
    oracle = OracleLSTM(vocab_size=30, max_length=9, seed=4).to(device)
    tokens = torch.randint(0, 30, (16, 9), generator=torch.Generator().manual_seed(0)).to(device)
    h, c = oracle._zeros(16)
    prev = torch.zeros(16, dtype=torch.long, device=device)
    expected = []
    for t in range(9):
        h, c = oracle.cell(oracle.embedding[prev], h, c)
        expected.append(h)
        prev = tokens[:, t]
    # CUDA: cuDNN's float32 LSTM and the cell's matrix products round differently, and the
    # oracle's N(0, 1) weights amplify that over 9 steps (up to 5e-5 seen on an H200)
    atol = 1e-5 if device.type == "cpu" else 1e-4
    torch.testing.assert_close(oracle.hidden_states(tokens), torch.stack(expected, 1), rtol=0, atol=atol)


def test_oracle_on_gives_each_device_its_own_copy(device):
    data = OracleData(OracleLSTM(vocab_size=20, max_length=4, seed=1), max_length=4, n_train=8, n_test=8)
    shared = data.oracle
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    assert data.oracle_on("cpu") is shared and data.oracle_on(torch.device("cpu")) is shared
    meta = data.oracle_on("meta")
    assert meta is not shared and all(p.device.type == "meta" for p in meta.parameters())
    assert data.oracle_on(torch.device("meta")) is meta  # one copy per device, reused
    assert (meta.vocab_size, meta.max_length) == (20, 4)
    own = data.oracle_on(device)  # pytest's --device: the shared oracle on the CPU, else an equal copy
    assert (own is shared) == (device.type == "cpu") and data.oracle_on(device) is own
    assert all(torch.equal(v.cpu(), before[k]) for k, v in own.state_dict().items())
    assert all(p.device.type == device.type for p in own.parameters())
    after = shared.state_dict()
    assert all(v.device.type == "cpu" and torch.equal(v, before[k]) for k, v in after.items())


def test_cached_samples_never_move_the_oracle(monkeypatch, tmp_path):
    from textgym.data import cached_samples

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))  # a cache miss: the oracle samples
    oracle = OracleLSTM(vocab_size=20, max_length=4, seed=2)
    moves: list = []
    original = torch.nn.Module._apply

    def spy(self, fn, *args, **kwargs):
        if self is oracle:
            moves.append(fn)
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "_apply", spy)
    x = cached_samples(oracle, 16, seed=5)
    assert moves == []
    assert torch.equal(x, oracle.sample_dataset(16, 5))
    assert torch.equal(cached_samples(oracle, 16, seed=5), x)  # from the disk cache now


def test_a_damaged_sample_cache_is_sampled_anew_not_used(monkeypatch, tmp_path):
    """A cache file whose tokens were altered on disk (same shape) was used as the training set."""
    from textgym.data import cached_samples

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    oracle = OracleLSTM(vocab_size=20, max_length=4, seed=2)
    x = cached_samples(oracle, 16, seed=5)
    (path,) = tmp_path.glob("oracle-samples-*.pt")
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, "tokens": blob["tokens"] ^ 1}, path)  # bit 0 of every token flipped
    assert torch.equal(cached_samples(oracle, 16, seed=5), x)
    torch.save(x ^ 1, path)  # no checksum at all (the format of an earlier release)
    assert torch.equal(cached_samples(oracle, 16, seed=5), x)
    assert torch.equal(torch.load(path, weights_only=True)["tokens"], x)  # written anew


def test_a_misspelled_data_set_name_suggests_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="did you mean 'coco'"):
        resolve_data("cocoa")
    with pytest.raises(FileNotFoundError, match="did you mean 'oracle-classes'"):
        resolve_data("oracle-clases")
    with pytest.raises(FileNotFoundError, match="does not exist"):  # no close name: the missing file
        resolve_data("my_corpus.txt")


def test_long_test_sentences_are_counted_in_a_warning_too(tmp_path):
    """Only the training file's were: a test sentence was cut (or dropped) silently, changing
    NLL-test and the BLEU references."""
    train = write(tmp_path, "t.txt", "a b\nb a\n")
    test = write(tmp_path, "v.txt", "a b a b a b\na b\n")
    with pytest.warns(UserWarning, match=r"1 of 2 test sentences of .*v\.txt have more than max_length - 1 = 2 words: "
                                         r"truncated"):
        c = Corpus(train, test)
    assert c.test_lengths.tolist() == [3, 3]
    with pytest.warns(UserWarning, match="dropped"):
        assert Corpus(train, test, long_sentences="drop").test_lengths.tolist() == [3]


def test_a_byte_order_mark_is_no_part_of_a_word_and_eos_only_ends_a_line(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffa b\nb a\n".encode())
    assert Corpus(tmp_path / "bom.txt").vocab.itos[2:] == ["a", "b"]  # was '\ufeffa', a word of its own
    c = Corpus(write(tmp_path, "e.txt", "a b <eos>\nb a\n"))  # a written end marker: the line's end
    assert c.train_lengths.tolist() == [3, 3]
    with pytest.raises(ValueError, match=r"e2\.txt, line 2: '<eos>' inside a sentence"):
        Corpus(write(tmp_path, "e2.txt", "a b\na <eos> b\n"))  # was the sentence "a", silently


def test_only_a_newline_ends_a_line(tmp_path):
    """str.splitlines also split at form feeds, "\\x1c".."\\x1e", NEL and U+2028/U+2029: one line
    became several sentences, and the errors after it named the wrong line."""
    odd = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    p = write(tmp_path, "odd.txt", f"a{odd}b\r\nc d\n\ne\r")  # Windows line ends; a last line without "\n"
    assert read_lines(p) == [f"a{odd}b", "c d", "", "e"]
    assert Corpus(p).train_lengths.tolist() == [3, 3, 2]  # three sentences ("a b": the odd characters are spaces)
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: '<eos>' inside a sentence"):
        Corpus(write(tmp_path, "bad.txt", "a\x0cb\nc <eos> d\n"))
    assert read_lines(write(tmp_path, "mac.txt", "a b c\rd e f\rg h\r")) == ["a b c", "d e f", "g h"]  # old Mac ends


def test_oracle_data_never_changes_the_callers_oracle(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    oracle = OracleLSTM(vocab_size=20, max_length=4, seed=1)
    data = OracleData(oracle, max_length=6, n_train=8, n_test=8)
    assert oracle.max_length == 4 and oracle.sample(2).shape == (2, 4)  # was set to 6
    assert data.oracle.max_length == 6 and data.train.shape == (8, 6)
    assert torch.equal(data.oracle.Wo, oracle.Wo)
    assert OracleData(oracle, max_length=4, n_train=8, n_test=8).oracle is oracle  # no copy needed


def test_oracle_classes_is_a_data_set_name_for_the_env_too():
    """"oracle-classes" (train.py's name for the class-conditional benchmark, suggested for
    misspellings) was taken for a file name: "corpus file 'oracle-classes' does not exist"."""
    import gymnasium as gym

    from textgym.classes import MultiOracleData

    data = resolve_data("oracle-classes", 8)
    assert isinstance(data, MultiOracleData) and data.num_classes == 2 and data.max_length == 8
    assert resolve_data("oracle-classes", 8) is data  # cached: deterministic, built once per length
    venv = gym.make_vec("textgym/TokenGen-v0", num_envs=2, data="oracle-classes", max_length=8)
    assert venv.num_classes == 2 and venv.data is data and venv.reset(seed=0)[0].shape == (2, 9)


def test_a_runs_bleu_references_are_the_evaluate_clis(tmp_path):
    """They are the held-out file's sentences as written and whole. The run's references used to
    be the encoded test rows: a <unk> that the text itself writes (PTB) never matched, and a
    sentence cut at max_length lost its brevity penalty (BLEU-4 1.0 against the CLI's 0.37)."""
    from textgym.bleu import bleu
    from textgym.evaluate import read_references

    train = write(tmp_path, "tr.txt", "the <unk> sat\nthe cat ran\na b c\n")
    test = write(tmp_path, "te.txt", "the <unk> ran\nthe cat sat on a mat\nthe dog ran\n")
    with pytest.warns(UserWarning, match="test sentences"):
        c = Corpus(train, test)
    refs = c.bleu_references()
    assert refs == read_references(str(test)) == [["the", "<unk>", "ran"], ["the", "cat", "sat", "on", "a", "mat"],
                                                  ["the", "dog", "ran"]]
    assert c.decode(c.test[0, : int(c.test_lengths[0])].tolist()) == "the <unk> ran"
    assert bleu([["the", "<unk>", "ran"]], refs, 3) == 1.0  # the generated <unk> matches the text's own
    assert c.test_lengths[1] == c.max_length == 4  # cut for NLL-test...
    assert bleu([["the", "cat", "sat", "on"]], [refs[1]], 2) < 1.0  # ...but whole as a reference: a brevity penalty
    assert c.decode(c.test[2, : int(c.test_lengths[2])].tolist()) == "the <unk> ran"  # "dog": not a training word...
    assert bleu([["the", "<unk>", "ran"]], [refs[2]], 3) < 1.0  # ...and a generated <unk> is not it
    assert c.bleu_references([1]) == [refs[1]]
    # without a test set, the training sentences; a run's train_size cut keeps them aligned
    plain = Corpus(train)
    assert plain.bleu_references() == [["the", "<unk>", "sat"], ["the", "cat", "ran"], ["a", "b", "c"]]
    assert plain.train_subset(torch.tensor([2, 0])).bleu_references() == [["a", "b", "c"], ["the", "<unk>", "sat"]]
    with pytest.warns(UserWarning, match="dropped"):  # a dropped sentence is no reference either
        assert Corpus(train, test, long_sentences="drop").bleu_references() == [refs[0], refs[2]]


def test_a_byte_order_mark_inside_a_file_is_no_part_of_a_word_either(tmp_path):
    """Two Windows files joined with cat: the second's mark made '\\ufeffhello' a word of its own."""
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbfhello\n\xef\xbb\xbfhello world\n")
    assert Corpus(tmp_path / "c.txt").vocab.itos[2:] == ["hello", "world"]


def test_vocabulary_ties_are_alphabetical_so_line_order_changes_no_id(tmp_path):
    """DA1: words of equal count are ordered alphabetically (Vocab.build), so the ids do not depend
    on the order of the file's lines (a shuffled copy of a corpus keeps its vocabulary, and its
    checkpoints' fingerprint). The suite's tie (cat, sat) was also in first-seen order."""
    from textgym.data import Corpus

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("zebra yak\napple yak\n")
    b.write_text("apple yak\nzebra yak\n")
    assert Corpus(a).vocab.itos == Corpus(b).vocab.itos == ["<eos>", "<unk>", "yak", "apple", "zebra"]


def test_max_vocab_caps_the_whole_vocabulary_with_its_special_tokens(tmp_path):
    """DA2: max_vocab = 4 is a vocabulary of 4 ids: <eos>, <unk> and the 2 most frequent words (the
    rest become <unk>). No test set max_vocab."""
    from textgym.data import UNK_ID, Corpus

    p = tmp_path / "t.txt"
    p.write_text("a a a b b c\nd\n")
    c = Corpus(p, max_vocab=4)
    assert c.vocab_size == 4 and c.vocab.itos == ["<eos>", "<unk>", "a", "b"]
    assert c.train[0].tolist()[:6] == [2, 2, 2, 3, 3, UNK_ID] and c.train[1].tolist()[:2] == [UNK_ID, 0]
