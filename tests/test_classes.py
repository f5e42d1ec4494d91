"""Class-conditional foundations: labelled corpora, the multi-oracle benchmark, the env's
``classes`` option and the multi-class discriminator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from discriminators import MultiClassDiscriminator, MultiClassTrainer, make_multiclass
from textgym import TokenEnv, TokenVecEnv
from textgym.classes import ClassData, LabelledCorpus, MultiOracleData, is_labelled_file, num_classes_of, read_corpus
from textgym.data import Corpus, data_path
from textgym.oracle import OracleLSTM

LINES = [
    "pos\tA good film",
    "neg\tbad film",
    "",
    "pos\tgreat fun , really great",
    "neutral \tit is a film",
    "neg\tdull",
]


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def labelled(tmp_path):
    return write(tmp_path, "train.tsv", LINES)


@pytest.fixture(scope="module")
def small_multi() -> MultiOracleData:
    """Two fresh small oracles (V=30, L=6)."""
    return MultiOracleData(2, seqgan_oracle=False, vocab_size=30, emb_dim=8, hidden_dim=8, max_length=6,
                           n_train=40, n_test=20, seed=5, oracle_seed=7)


# ---------------------------------------------------------------------- LabelledCorpus
def test_labelled_corpus_parses_labels_and_encodes_like_corpus(labelled, tmp_path):
    data = LabelledCorpus(labelled, labelled)
    assert isinstance(data, Corpus) and isinstance(data, ClassData) and num_classes_of(data) == 3
    assert data.class_names == ["neg", "neutral", "pos"]  # sorted distinct labels; whitespace stripped
    assert data.train_labels.dtype == torch.int64
    assert data.train_labels.tolist() == [2, 0, 2, 1, 0] == data.test_labels.tolist() == data.labels.tolist()
    # the sentences alone, read by Corpus: the same vocabulary, ids, lengths and max_length
    plain = Corpus(write(tmp_path, "plain.txt", [line.split("\t", 1)[1] for line in LINES if line]))
    assert data.vocab.itos == plain.vocab.itos and data.max_length == plain.max_length
    assert torch.equal(data.train, plain.train) and torch.equal(data.train_lengths, plain.train_lengths)
    assert data.pad_id == data.vocab_size and data.eos_id == 0
    assert data.decode(data.train[0].tolist()) == "A good film"


def test_labelled_corpus_given_classes_lowercase_and_dropped_sentences(labelled):
    data = LabelledCorpus(labelled, classes=["pos", "neg", "neutral", "unused"], lowercase=True)
    assert data.num_classes == 4 and data.class_names == ["pos", "neg", "neutral", "unused"]
    assert data.train_labels.tolist() == [0, 1, 0, 2, 1] and data.test_labels is None
    assert data.decode(data.train[0].tolist()) == "a good film"
    # the 6-word sentence does not fit max_length=5 with its <eos>: dropped, with its label
    with pytest.warns(UserWarning, match="dropped"):
        short = LabelledCorpus(labelled, max_length=5, long_sentences="drop")
    assert len(short.train) == len(short.train_labels) == 4
    assert short.train_labels.tolist() == [2, 0, 1, 0]


@pytest.mark.parametrize("lines, line_no, message", [
    (["pos\tfine", "no tab here"], 2, "no TAB"),
    (["pos\tfine", "", "\tan unlabelled sentence"], 3, "empty label"),
    (["pos\tfine", "  \tspaces only label"], 2, "empty label"),
    (["pos\tfine", "neg\tok", "other\tunknown class"], 3, r"label 'other' is not one of the 2 classes \['pos', 'neg'\]"),
    (["pos\tfine", "neg\t   "], 2, "has no sentence"),
])
def test_labelled_corpus_bad_lines_name_file_and_line(tmp_path, lines, line_no, message):
    p = write(tmp_path, "bad.tsv", lines)
    with pytest.raises(ValueError, match=rf"bad\.tsv', line {line_no}: .*{message}"):
        LabelledCorpus(p, classes=["pos", "neg"])


def test_labelled_corpus_test_file_labels_must_be_known(labelled, tmp_path):
    test = write(tmp_path, "test.tsv", ["pos\tgood", "happy\tvery good"])
    with pytest.raises(ValueError, match=r"test\.tsv'?, line 2: label 'happy' is not one of the 3 classes"):
        LabelledCorpus(labelled, test)


def test_labelled_corpus_bad_arguments(labelled, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        LabelledCorpus(labelled, classes=["pos", "neg", "pos"])
    with pytest.raises(ValueError, match="at least one class"):
        LabelledCorpus(labelled, classes=[])
    with pytest.raises(ValueError, match="list of class names"):
        LabelledCorpus(labelled, classes="pos")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty strings"):
        LabelledCorpus(labelled, classes=["pos", ""])
    with pytest.raises(ValueError, match="holds no labelled sentences"):
        LabelledCorpus(write(tmp_path, "empty.tsv", ["", "  "]))
    with pytest.raises(FileNotFoundError):
        LabelledCorpus(tmp_path / "missing.tsv")


def test_labelled_corpus_reads_eos_as_corpus_does(tmp_path):
    """A final ``<eos>`` is the line's end; one inside a sentence is refused with its line, as
    Corpus does (LabelledCorpus kept the first as a word and let the second cut a sentence)."""
    data = LabelledCorpus(write(tmp_path, "e.tsv", ["pos\tthe cat sat <eos>", "neg\tthe dog ran"]))
    assert data.train_lengths.tolist() == [4, 4] and "<eos>" not in data.vocab.itos[2:]
    assert data.decode(data.train[0].tolist()) == "the cat sat"
    with pytest.raises(ValueError, match=r"e2\.tsv', line 2: '<eos>' inside a sentence"):
        LabelledCorpus(write(tmp_path, "e2.tsv", ["pos\tthe cat sat", "neg\tthe <eos> dog ran"]))


# ---------------------------------------------------------------------- MultiOracleData
def slow_token_nll(oracle: OracleLSTM, seq: list[int]) -> list[float]:
    """Per-token NLL of one sequence, one step of the LSTM cell at a time."""
    h = c = torch.zeros(1, oracle.hidden_dim)
    prev, out = 0, []
    with torch.no_grad():
        for tok in seq:
            h, c = oracle.cell(oracle.embedding[prev][None], h, c)
            out.append(-float(torch.log_softmax(oracle.logits(h), -1)[0, tok]))
            prev = tok
    return out


def test_multi_oracle_is_deterministic(tmp_path, monkeypatch):
    kw = dict(seqgan_oracle=False, vocab_size=30, emb_dim=8, hidden_dim=8, max_length=6, n_train=24, n_test=12)
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "a"))
    a = MultiOracleData(3, seed=1, **kw)
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "b"))  # no cache shared: sampled again
    b = MultiOracleData(3, seed=1, **kw)
    c = MultiOracleData(3, seed=2, **kw)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    assert a.train.shape == (72, 6) and a.test.shape == (36, 6) and a.num_classes == 3
    assert a.train_labels.tolist() == [0] * 24 + [1] * 24 + [2] * 24 and a.labels is a.train_labels
    assert a.test_labels.tolist() == [0] * 12 + [1] * 12 + [2] * 12
    assert (a.train_lengths == 6).all() and a.eos_id is None and a.vocab_size == 30
    # class c's block is its own oracle's samples; the oracles are different LSTMs
    for k in range(3):
        assert torch.equal(a.train[24 * k : 24 * (k + 1)], a.oracle_for(k).sample_dataset(24, 1 + 2 * k))
    assert not torch.equal(a.oracle_for(0).W, a.oracle_for(1).W)
    assert torch.equal(a.oracle_for(2).W, OracleLSTM(30, 8, 8, max_length=6, seed=100 + 2).W)


def test_multi_oracle_with_the_seqgan_oracle():
    path = data_path("oracle_lstm", "target_params.npz")
    if path is None:
        pytest.skip("data file oracle_lstm/target_params.npz not found (set TEXTGYM_DATA)")
    data = MultiOracleData(2, n_train=16, n_test=8)
    assert data.vocab_size == 5000 and data.max_length == 20 and data.class_names == ["oracle0", "oracle1"]
    assert torch.equal(data.oracle_for(0).Wo, OracleLSTM.from_npz(path).Wo)  # the published oracle
    assert torch.equal(data.oracle_for(1).Wo, OracleLSTM(seed=101).Wo)  # N(0, 1) init, seeded
    with pytest.raises(ValueError, match="published oracle has sizes"):
        MultiOracleData(2, vocab_size=100, n_train=4, n_test=4)


def test_per_class_nll_oracle_matches_a_slow_reference(small_multi, device):
    """Scored on ``device`` (the tokens' device), against one LSTM cell step at a time on the CPU."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.cat([small_multi.train[::7], torch.randint(30, (5, 6), generator=g)])
    labels = torch.randint(2, (len(tokens),), generator=g)
    ref = [slow_token_nll(small_multi.oracle_for(int(c)), row.tolist()) for row, c in zip(tokens, labels, strict=True)]
    tokens, labels = tokens.to(device), labels.to(device)
    per_class = small_multi.nll_oracle_per_class(tokens, labels)
    assert per_class.device.type == device.type
    per_class = per_class.cpu()
    for c in range(2):
        rows = [r for r, lab in zip(ref, labels.tolist(), strict=True) if lab == c]
        assert float(per_class[c]) == pytest.approx(np.mean([x for r in rows for x in r]), rel=1e-5)
    assert small_multi.nll_oracle(tokens, labels) == pytest.approx(np.mean([x for r in ref for x in r]), rel=1e-5)
    # with lengths: positions past each length (padding) are not scored
    lengths = torch.randint(1, 7, (len(tokens),), generator=g).to(device)
    padded = torch.where(torch.arange(6, device=device)[None] < lengths[:, None], tokens, torch.full_like(tokens, 30))
    valid = [x for r, n in zip(ref, lengths.tolist(), strict=True) for x in r[:n]]
    assert small_multi.nll_oracle(padded, labels, lengths) == pytest.approx(np.mean(valid), rel=1e-5)
    # a class without rows is NaN; the other classes are unaffected
    only0 = small_multi.nll_oracle_per_class(tokens[labels == 0], labels[labels == 0])
    assert math.isnan(float(only0[1])) and float(only0[0]) == pytest.approx(float(per_class[0]), rel=1e-6)
    # sequences score better under their own class's oracle
    train, train_labels = small_multi.train.to(device), small_multi.train_labels.to(device)
    own = small_multi.nll_oracle(train, train_labels)
    swapped = small_multi.nll_oracle(train, 1 - train_labels)
    assert own < swapped


def test_per_class_nll_oracle_takes_labels_as_nll_oracle_does(small_multi):
    """nll_oracle takes a list or a numpy array of labels; nll_oracle_per_class crashed on them."""
    tokens, labels = small_multi.test, small_multi.test_labels
    expected = small_multi.nll_oracle_per_class(tokens, labels)
    for given in (labels.tolist(), labels.numpy()):
        torch.testing.assert_close(small_multi.nll_oracle_per_class(tokens, given), expected)
    with pytest.raises(ValueError, match="class id 2 is out of range"):
        small_multi.nll_oracle_per_class(tokens[:2], [0, 2])


def test_multi_oracle_errors(small_multi):
    with pytest.raises(ValueError, match=r"class id 2 is out of range for 2 classes \(valid ids: 0\.\.1\)"):
        small_multi.oracle_for(2)
    for c in (1.7, 1.0, True):  # 1.7 was class 1
        with pytest.raises(ValueError, match=rf"a class id must be an integer, got {c!r}"):
            small_multi.oracle_for(c)
    assert small_multi.oracle_for(np.int64(1)) is small_multi.oracle_for(torch.tensor(1)) is small_multi.oracles[1]
    with pytest.raises(ValueError, match="class id -1 is out of range"):
        small_multi.nll_oracle(small_multi.train[:3], torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        small_multi.nll_oracle(small_multi.train[:3], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer class ids"):
        small_multi.nll_oracle(small_multi.train[:2], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="2 oracles were given"):
        MultiOracleData(3, oracles=small_multi.oracles, max_length=6, n_train=2, n_test=2)
    with pytest.raises(ValueError, match="share one vocabulary"):
        MultiOracleData(oracles=[OracleLSTM(10, 4, 4, max_length=6), OracleLSTM(11, 4, 4, max_length=6)],
                        max_length=6, n_train=2, n_test=2)


@pytest.mark.parametrize("size", ["vocab_size", "emb_dim", "hidden_dim"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_multi_oracle_refuses_bad_oracle_sizes_by_name(size, value):
    """vocab_size=0 was a torch RuntimeError, emb_dim=0 and hidden_dim=0 were accepted."""
    with pytest.raises(ValueError, match=rf"{size} must be an integer >= 1, got {value}"):
        MultiOracleData(2, seqgan_oracle=False, max_length=4, n_train=2, n_test=2, **{size: value})


# ---------------------------------------------------------------------- the env's classes option
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("which", ["corpus", "oracles"])
def test_env_classes_under_random_actions(labelled, small_multi, toy_scorer, mode, which, device):
    data = LabelledCorpus(labelled) if which == "corpus" else small_multi
    k, L, V = data.num_classes, data.max_length, data.vocab_size
    N = 16
    env = TokenVecEnv(N, data=data, discriminator=toy_scorer(V), seed=3, autoreset_mode=mode, device=device)
    assert env.num_classes == k
    assert env.single_observation_space.shape == (L + 1,)
    assert env.single_observation_space.high.tolist() == [V] * L + [k - 1]
    obs, _ = env.reset(seed=3)
    assert obs.shape == (N, L + 1) and obs.dtype == torch.int64 and obs.device.type == device.type
    episode_class = env.classes.clone()
    seen = set(episode_class.tolist())
    g = torch.Generator(device=device).manual_seed(0)
    finished = torch.zeros(N, dtype=torch.bool, device=device)
    for _ in range(4 * L):
        actions = torch.randint(V, (N,), generator=g, device=device)
        obs, _, term, trunc, infos = env.step(actions)
        assert env.observation_space.contains(obs.cpu().numpy())
        assert torch.equal(obs[:, :L], env.tokens) and torch.equal(obs[:, L], env.classes)
        new_episode = finished if mode == AutoresetMode.NEXT_STEP else term
        # the class is constant within an episode; a new episode may draw another one
        same = ~new_episode
        assert torch.equal(env.classes[same], episode_class[same])
        if mode == AutoresetMode.SAME_STEP and bool(term.any()):
            assert torch.equal(infos["final_obs"][term, L], episode_class[term])
        episode_class = env.classes.clone()
        seen |= set(episode_class.tolist())
        finished = term | trunc
        assert not bool(trunc.any())
    assert seen == set(range(k))  # every class is drawn
    # the draws come from the env's seeded generator
    again = TokenVecEnv(N, data=data, discriminator=toy_scorer(V), seed=3, autoreset_mode=mode, device=device)
    again.reset(seed=3)
    env.reset(seed=3)
    assert torch.equal(again.classes, env.classes)


def test_env_classes_from_options(small_multi, toy_scorer, device):
    env = TokenVecEnv(4, data=small_multi, discriminator=toy_scorer(30), seed=0, device=device)
    obs, _ = env.reset(options={"classes": [1, 0, 1, 1]})
    assert obs[:, -1].tolist() == [1, 0, 1, 1] == env.classes.tolist()
    assert (obs[:, :-1] == 30).all()
    obs, _ = env.reset(options={"classes": np.array([0, 0, 0, 1]), "reset_mask": [True, False, True, False]})
    assert env.classes.tolist() == [0, 0, 0, 1]  # the envs not reset keep theirs
    obs, _ = env.reset(options={"classes": 1, "prefix": [[3], [4, 5], [], [6]]})
    assert env.classes.tolist() == [1] * 4 and obs[1, :2].tolist() == [4, 5] and obs[1, -1] == 1
    # the episodes keep class 1 to their end (at max_length 6: after 5, 4, 6 and 5 steps); with
    # NEXT_STEP autoreset the step after an end starts a new episode, whose class the env draws
    started = torch.zeros(4, dtype=torch.bool, device=device)
    for _ in range(6):
        obs, _, term, _, _ = env.step(torch.zeros(4, dtype=torch.long, device=device))
        assert obs.device.type == device.type and torch.equal(obs[:, -1], env.classes)
        assert (obs[~started, -1] == 1).all()
        started |= term
    assert started.all()  # every episode ended (the last at the sixth step)


def test_env_class_errors(labelled, small_multi, toy_scorer, small_oracle_data):
    env = TokenVecEnv(3, data=small_multi, discriminator=toy_scorer(30))
    for bad, match in [([0, 2, 1], r"class id 2 is out of range for 2 classes \(valid ids: 0\.\.1\)"),
                       ([0, -1, 1], "class id -1 is out of range"),
                       ([0, 1], r"must have shape \(3,\)"),
                       ([0.5, 1, 0], "must be integers"),
                       ([0, 1, None], "integer array")]:
        with pytest.raises(ValueError, match=match):
            env.reset(options={"classes": bad})
    with pytest.raises(ValueError, match="unknown reset options.*valid: prefix, prefix_lengths, reset_mask, classes"):
        env.reset(options={"class": [0, 1, 0]})
    with pytest.raises(ValueError, match="classes=3 disagrees with the data, which has 2 classes"):
        TokenVecEnv(2, data=small_multi, discriminator=toy_scorer(30), classes=3)
    with pytest.raises(ValueError, match="classes=2 disagrees with the data, which has 3 classes"):
        data = LabelledCorpus(labelled)
        TokenVecEnv(2, data=data, discriminator=toy_scorer(data.vocab_size), classes=2)
    with pytest.raises(ValueError, match="classes must be an integer >= 1"):
        TokenVecEnv(2, data=small_oracle_data, classes=0)
    plain = TokenVecEnv(2, data=small_oracle_data)
    with pytest.raises(ValueError, match="this env has no classes"):
        plain.reset(options={"classes": [0, 1]})


def test_env_classes_on_unlabelled_data_and_default_unchanged(small_oracle_data):
    plain = TokenVecEnv(2, data=small_oracle_data, seed=0)
    assert plain.num_classes is None and plain.classes is None
    assert plain.reset(seed=0)[0].shape == (2, 6) and plain.single_observation_space.shape == (6,)
    env = TokenVecEnv(5, data=small_oracle_data, seed=0, classes=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5, 7) and set(obs[:, -1].tolist()) <= {0, 1, 2}
    # rewards do not depend on the class column: same actions, same rewards as without classes
    a = torch.arange(5) % 50
    r0 = [plain.step(a[:2])[1] for _ in range(6)]
    r1 = [env.step(a)[1][:2] for _ in range(6)]
    assert all(torch.allclose(x, y) for x, y in zip(r0, r1, strict=True))


def test_single_env_with_classes_passes_the_checkers(labelled, toy_scorer):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    data = LabelledCorpus(labelled)
    env = TokenEnv(data=data, discriminator=toy_scorer(data.vocab_size), seed=0)
    assert env.observation_space.shape == (data.max_length + 1,)
    check_env(env, skip_render_check=True)
    sb3_check_env(env)
    obs, _ = env.reset(options={"classes": 2})
    assert obs[-1] == 2


# ---------------------------------------------------------------------- the multi-class discriminator
@pytest.mark.parametrize("name", ["multiclass-rnn", "multiclass-cnn"])
def test_class_reward_is_the_softmax_probability_of_the_target_class(name, device):
    k, V = 3, 12
    opts = {"size": "small"} if name == "multiclass-cnn" else {"hidden": 16, "emb_dim": 8}
    d = make_multiclass(name, V, k, max_length=8, seed=0, **opts).to(device)
    assert isinstance(d, MultiClassDiscriminator) and d.fake_class == 3
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(V, (6, 8), generator=g).to(device)
    lengths = torch.tensor([8, 1, 3, 8, 5, 6], device=device)
    classes = torch.tensor([0, 1, 2, 2, 1, 0], device=device)
    d.train()  # the reward is computed in eval mode whatever the module's mode
    reward = d.class_reward(tokens, lengths, classes)
    assert d.training and reward.device.type == device.type
    d.eval()
    with torch.no_grad():
        t, n, valid = d.check_inputs(tokens, lengths)
        z = d.encoder.encode(t, n, valid) @ d.class_head.weight.T + d.class_head.bias  # (N, k + 1)
    e = torch.exp(z - z.max(1, keepdim=True).values)
    by_hand = torch.stack([e[i, classes[i]] / e[i].sum() for i in range(6)])
    assert reward.shape == (6,) and torch.allclose(reward, by_hand, atol=1e-6)
    assert torch.allclose(d.class_probs(tokens, lengths).sum(1), torch.ones(6, device=device), atol=1e-6)
    # the binary logit of P(real): log Σ_{c<k} p_c - log p_k
    real = torch.log(e[:, :k].sum(1)) - torch.log(e[:, k])
    assert torch.allclose(d.score(tokens, lengths), real, atol=1e-5)
    # seeded construction is reproducible and leaves the global RNG alone
    state = torch.get_rng_state()
    assert torch.equal(make_multiclass(name, V, k, max_length=8, seed=0, **opts).class_head.weight, d.class_head.weight.cpu())
    assert torch.equal(torch.get_rng_state(), state)


def test_multiclass_checks(small_multi, labelled, toy_scorer, small_oracle_data):
    d = make_multiclass("multiclass-rnn", 30, 2, max_length=6, hidden=8, emb_dim=8, seed=0)
    d.check_num_classes(small_multi)
    d.check_num_classes(TokenVecEnv(2, data=small_multi, discriminator=toy_scorer(30)))
    with pytest.raises(ValueError, match=r"discriminator has 2 classes \(\+ fake, 3 logits\) but the data/env has 3"):
        d.check_num_classes(LabelledCorpus(labelled))
    with pytest.raises(ValueError, match="has 2 classes.*but the env has 4"):
        d.check_num_classes(TokenVecEnv(2, data=small_oracle_data, classes=4), what="the env")
    with pytest.raises(ValueError, match="has no classes"):
        d.check_num_classes(Corpus(write_plain(labelled)))
    with pytest.raises(ValueError, match=r"class id 2 is out of range for 2 classes"):
        d.class_reward(small_multi.train[:2], None, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"classes must have shape \(2,\)"):
        d.class_reward(small_multi.train[:2], None, torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown multi-class discriminator 'multiclass-x'"):
        make_multiclass("multiclass-x", 30, 2)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['hiden'\]"):
        make_multiclass("multiclass-rnn", 30, 2, hiden=3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        make_multiclass("multiclass-rnn", 30, 0)


def write_plain(path):
    out = path.with_name("plain-sentences.txt")
    out.write_text("a b\nc d\n")
    return out


def test_multiclass_training_separates_two_easy_classes(device):
    """Class 0 uses tokens 0-4, class 1 tokens 5-9, fakes alternate between the halves; trained
    on ``device`` from CPU batches."""
    V, T, k = 10, 8, 2
    g = torch.Generator().manual_seed(0)

    def batch(n):
        c0 = torch.randint(0, 5, (n, T), generator=g)
        c1 = torch.randint(5, 10, (n, T), generator=g)
        fake = torch.where(torch.arange(T) % 2 == 0, torch.randint(0, 5, (n, T), generator=g),
                           torch.randint(5, 10, (n, T), generator=g))
        return torch.cat([c0, c1]), torch.tensor([0] * n + [1] * n), fake

    d = make_multiclass("multiclass-rnn", V, k, max_length=T, emb_dim=16, hidden=32, seed=0)
    trainer = MultiClassTrainer(d, lr=1e-2, batch_size=64, seed=0, device=device)
    assert d.device.type == device.type
    real, labels, fake = batch(256)
    held_real, held_labels, held_fake = batch(128)
    before = trainer.evaluate(held_real, None, held_labels, held_fake, None)
    stats = trainer.step(real, None, labels, fake, None, epochs=2)
    after = trainer.evaluate(held_real, None, held_labels, held_fake, None)
    assert stats["steps"] == 2 * math.ceil(768 / 64) == trainer.total_steps
    assert stats["n_real"] == 512 and stats["n_fake"] == 256 and math.isfinite(stats["loss"])
    assert after["acc"] > 0.9 > before["acc"], (before, after)
    assert after["acc_real"] > 0.9 and after["acc_fake"] > 0.8
    # the class reward follows: real sequences get a high probability of their own class
    assert float(d.class_reward(held_real, None, held_labels).mean()) > 0.7
    assert float(d.class_reward(held_real, None, 1 - held_labels).mean()) < 0.2
    with pytest.raises(ValueError, match=r"real_classes: class id 5 is out of range"):
        trainer.step(real[:2], None, torch.tensor([0, 5]))


def test_multiclass_held_out_figures_of_equal_logits_are_chance():
    """A discriminator whose k + 1 logits are all equal calls each class with probability
    1/(k + 1) (ties shared; argmax used to call every row class 0) and has cross-entropy log(k + 1)."""
    V, T, k = 10, 6, 3
    d = make_multiclass("multiclass-rnn", V, k, max_length=T, emb_dim=8, hidden=8, seed=0)
    with torch.no_grad():
        d.class_head.weight.zero_()
        d.class_head.bias.zero_()
    trainer = MultiClassTrainer(d, seed=0)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randint(V, (30, T), generator=g), torch.randint(V, (12, T), generator=g)
    out = trainer.evaluate(real, None, torch.arange(30) % k, fake, None)
    assert out["acc_real"] == pytest.approx(1 / (k + 1)) and out["acc_fake"] == pytest.approx(1 / (k + 1))
    assert out["acc"] == pytest.approx(1 / (k + 1)) and out["loss"] == pytest.approx(math.log(k + 1))
    assert trainer.step(real, None, torch.arange(30) % k, fake, None)["acc_fake"] == pytest.approx(1 / (k + 1))


def test_a_file_is_a_labelled_corpus_only_when_every_line_holds_a_tab(tmp_path):
    """train.py used to decide from the first line alone: a plain corpus with a TAB there lost each
    line's first word as a "label" without a word said, and a labelled file whose first label was
    missing had every label read as a word."""
    from agents.config import RunConfig
    from agents.driver import load_data

    labelled = write(tmp_path, "l.tsv", ["pos\ta good film", "neg\ta bad film"])
    data = load_data(RunConfig(data=str(labelled)))
    assert isinstance(data, LabelledCorpus) and data.class_names == ["neg", "pos"]
    assert is_labelled_file(labelled) and isinstance(read_corpus(labelled), LabelledCorpus)
    for name, lines in (("first.txt", ["big\tsmall big", "small big", "big big"]),
                        ("lost.tsv", ["a good film", "neg\ta bad film", "pos\tfine"])):
        path = write(tmp_path, name, lines)
        with pytest.warns(UserWarning, match=rf"of the 3 lines of .*{name} hold a TAB, but line \d does not: "
                                             "read as plain text"):
            data = load_data(RunConfig(data=str(path)))
        assert type(data) is Corpus and data.decode(data.train[0, : int(data.train_lengths[0])].tolist()) == lines[0].replace("\t", " ")
    # the env reads a file as train.py does
    env = TokenVecEnv(num_envs=2, data=str(labelled), seed=0)
    assert env.num_classes == 2
    # a labelled held-out file beside plain training text: its labels would have been test words
    plain = write(tmp_path, "p.txt", ["a good film", "a bad film"])
    with pytest.raises(ValueError, match=r"held-out file .*l\.tsv' is labelled .* training file .*p\.txt' is not"):
        read_corpus(plain, labelled)


def test_a_held_out_file_without_some_class_is_said(tmp_path):
    """Its NLL-test and BLEU average over the other classes (no key of the missing one)."""
    train = write(tmp_path, "tr.tsv", ["pos\ta b", "neg\tc d"])
    with pytest.warns(UserWarning, match=r"te\.tsv' has no sentence of the classes \['neg'\]"):
        LabelledCorpus(train, write(tmp_path, "te.tsv", ["pos\ta b"]))


def test_a_partial_reset_keeps_the_classes_of_the_envs_it_does_not_reset(small_oracle_data, toy_scorer):
    """E2: reset(options={'reset_mask': m}) sets classes only where m holds, for given and drawn
    classes alike. The suite's partial reset gave the unmasked envs the classes they already had."""
    from textgym import TokenVecEnv

    env = TokenVecEnv(4, data=small_oracle_data, discriminator=toy_scorer(50), classes=3, seed=0)
    env.reset(options={"classes": [2, 1, 2, 1]})
    env.reset(options={"classes": [0, 0, 0, 0], "reset_mask": [True, False, True, False]})
    assert env.classes.tolist() == [0, 1, 0, 1]
    for seed in range(5):  # drawn classes: envs 1 and 3 keep theirs, whatever the draw
        env.reset(seed=seed, options={"reset_mask": [True, False, True, False]})
        assert env.classes[[1, 3]].tolist() == [1, 1]


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_each_autoreset_episode_draws_its_own_class(small_oracle_data, toy_scorer, mode):
    """E4: an episode that an autoreset starts draws a class (the env's docstring), so one env
    sees every class over its episodes; with the class kept, a one-env run trained one class only.
    The suite checked that classes stay constant within an episode, and drew them at reset()."""
    from textgym import TokenVecEnv

    env = TokenVecEnv(1, data=small_oracle_data, discriminator=toy_scorer(50), classes=2, seed=0, autoreset_mode=mode)
    env.reset(seed=0)
    classes = set()
    for _ in range(140):  # 20 episodes of 6 tokens (7 steps each with next_step): P(one class throughout) = 2^-19
        env.step(torch.tensor([1]))
        classes.add(int(env.classes[0]))
    assert classes == {0, 1}
