"""textgym.bleu against nltk's sentence_bleu (method1), the definition the literature uses."""
from __future__ import annotations

import math
import random
from typing import List, Sequence

import numpy as np
import pytest
from conftest import need_data
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textgym.bleu import BleuScorer, bleu, bleu_multi, self_bleu, self_bleu_multi
from textgym.data import read_sentences

METHOD1 = SmoothingFunction().method1
TOL = 1e-12


def nltk_sentence(refs: Sequence[Sequence], hyp: Sequence, n: int) -> float:
    return sentence_bleu(refs, hyp, weights=(1 / n,) * n, smoothing_function=METHOD1)


def nltk_bleu(hyps: Sequence[Sequence], refs: Sequence[Sequence], n: int) -> float:
    return sum(nltk_sentence(refs, h, n) for h in hyps) / len(hyps)


def nltk_self_bleu(samples: Sequence[Sequence], n: int) -> float:
    """The slow loop: each sample against a list of all the others."""
    return sum(nltk_sentence(samples[:i] + samples[i + 1:], s, n) for i, s in enumerate(samples)) / len(samples)


def random_corpus(rng: random.Random, count: int, vocab: int, lengths: Sequence[int]) -> List[List[int]]:
    return [[rng.randrange(vocab) for _ in range(rng.choice(lengths))] for _ in range(count)]


def tricky_case(seed: int):
    """Small vocabulary (n-grams match often, repeated n-grams), lengths 0..12, hypotheses equal
    to a reference, duplicated references, and reference lengths tied around hypothesis lengths."""
    rng = random.Random(seed)
    vocab = rng.choice([2, 3, 4, 6])
    refs = random_corpus(rng, rng.randint(1, 12), vocab, [0, 1, 2, 3, 4, 5, 7, 9, 12])
    refs += [list(r) for r in refs[: rng.randint(0, 3)]]  # duplicate references
    hyps = random_corpus(rng, 10, vocab, [0, 1, 2, 3, 4, 6, 8, 11])
    hyps += [list(refs[0]), [], [0], [0, 0], [0, 0, 0, 0, 0, 0]]
    return hyps, refs


@pytest.mark.parametrize("seed", range(40))
def test_sentence_scores_match_nltk(seed: int) -> None:
    hyps, refs = tricky_case(seed)
    scorer = BleuScorer(refs, 5)
    for n in range(1, 6):
        for h in hyps:
            assert abs(scorer.sentence_bleu(h, n) - nltk_sentence(refs, h, n)) <= TOL, (h, refs, n)


@pytest.mark.parametrize("seed", range(10))
def test_corpus_bleu_matches_nltk(seed: int) -> None:
    hyps, refs = tricky_case(100 + seed)
    multi = bleu_multi(hyps, refs, ns=(1, 2, 3, 4, 5))
    for n in range(1, 6):
        expected = nltk_bleu(hyps, refs, n)
        assert abs(bleu(hyps, refs, n) - expected) <= TOL
        assert abs(multi[n] - expected) <= TOL


def test_string_tokens_and_higher_orders() -> None:
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split(), [], "a".split()]
    hyps = ["the the the the the the the".split(), "the cat is on the mat".split(), "on the".split(),
            "a cat".split(), "dog".split()]
    for n in (1, 2, 3, 4, 5, 7):
        assert abs(bleu(hyps, refs, n) - nltk_bleu(hyps, refs, n)) <= TOL


def test_empty_hypothesis_scores_zero_and_counts_in_the_mean() -> None:
    refs = [[1, 2, 3, 4], [2, 3, 4, 5, 6]]
    h = [1, 2, 3, 5]
    assert BleuScorer(refs).sentence_bleu([], 4) == 0.0 == nltk_sentence(refs, [], 4)
    assert bleu([[], h], refs, 4) == pytest.approx(nltk_sentence(refs, h, 4) / 2, abs=TOL)
    # no unigram in common: nltk returns 0 before smoothing, whatever the length
    assert bleu([[9, 9, 9]], refs, 2) == 0.0 == nltk_sentence(refs, [9, 9, 9], 2)


def test_array_inputs() -> None:
    rng = np.random.default_rng(0)
    hyps, refs = rng.integers(0, 4, size=(8, 6)), rng.integers(0, 4, size=(20, 5))
    expected = nltk_bleu(hyps.tolist(), refs.tolist(), 3)
    assert abs(bleu(hyps, refs, 3) - expected) <= TOL
    assert abs(bleu(list(hyps), list(refs), 3) - expected) <= TOL


def test_coco_subset_matches_nltk() -> None:
    train = read_sentences(need_data("coco", "image_coco.txt"))
    test = read_sentences(need_data("coco", "test_coco.txt"))
    hyps, refs = test[:100], train[:1000]  # nltk: about 0.05 s a hypothesis here
    ours = bleu_multi(hyps, refs, ns=(2, 3, 4, 5))
    weights = [(1 / n,) * n for n in (2, 3, 4, 5)]  # nltk computes all four in one pass
    per_hyp = [sentence_bleu(refs, h, weights, smoothing_function=METHOD1) for h in hyps]
    for j, n in enumerate((2, 3, 4, 5)):
        assert abs(ours[n] - sum(s[j] for s in per_hyp) / len(hyps)) <= TOL
    assert 0.1 < ours[4] < 0.9


def test_coco_self_bleu_matches_nltk() -> None:
    samples = read_sentences(need_data("coco", "test_coco.txt"))[:40]
    samples += [samples[3], samples[7]]  # exact duplicates count as other samples
    for n in (2, 4):
        assert abs(self_bleu(samples, n) - nltk_self_bleu(samples, n)) <= TOL


@pytest.mark.parametrize("seed", range(4))
def test_self_bleu_matches_slow_loop(seed: int) -> None:
    rng = random.Random(seed)
    samples = random_corpus(rng, 50, rng.choice([3, 5, 8]), [0, 1, 2, 3, 5, 8, 10])
    samples += [list(samples[i]) for i in rng.sample(range(50), 10)]  # duplicates
    rng.shuffle(samples)
    multi = self_bleu_multi(samples, ns=(1, 2, 3, 4, 5))
    for n in range(1, 6):
        expected = nltk_self_bleu(samples, n)
        assert abs(multi[n] - expected) <= TOL
        assert abs(self_bleu(samples, n) - expected) <= TOL


def test_self_bleu_exclusion_per_sentence() -> None:
    """The owner / runner-up / length bookkeeping of every single exclusion."""
    samples = [[1, 1, 1, 2], [1, 1, 2], [1, 2], [3], [1, 1, 1, 2], [2, 2, 2, 2, 2, 2, 2]]
    scorer = BleuScorer.from_samples(samples, 4)
    for i, s in enumerate(samples):
        others = samples[:i] + samples[i + 1:]
        for n in range(1, 5):
            assert abs(scorer.sentence_bleu(s, n, exclude=i) - nltk_sentence(others, s, n)) <= TOL
        for hyp_len in range(0, 10):  # the unique length 7 leaves with sample 5
            want = min((len(r) for r in others), key=lambda L: (abs(L - hyp_len), L))
            assert scorer.closest_ref_len(hyp_len, exclude=i) == want


def test_self_bleu_of_identical_sentences_is_one() -> None:
    s = "a man riding a wave on top of a surfboard".split()
    for n in (2, 3, 4, 5):
        assert self_bleu([s] * 5, n) == 1.0


def test_self_bleu_of_disjoint_sentences() -> None:
    # no token in common: nltk returns exactly 0 (no unigram match), smoothing never applies
    token_disjoint = [[10 * i + j for j in range(6)] for i in range(8)]
    for n in (2, 4):
        assert self_bleu(token_disjoint, n) == 0.0 == nltk_self_bleu(token_disjoint, n)
    # shared words but no shared bigram: small, non-zero through method1's epsilon
    bigram_disjoint = [[(k * j) % 7 for j in range(5)] for k in range(1, 7)]  # step k: bigrams differ by k
    for n in (2, 4):
        value = self_bleu(bigram_disjoint, n)
        assert abs(value - nltk_self_bleu(bigram_disjoint, n)) <= TOL
        assert 0.0 < value < 0.35
    # every unigram matches, no 2-gram does: (1 * 0.1/4 * 0.1/3 * 0.1/2) ** (1/4), about 0.08
    assert self_bleu(bigram_disjoint, 4) == pytest.approx((0.1 / 4 * 0.1 / 3 * 0.1 / 2) ** 0.25, abs=TOL)


def test_progress_bar_gives_the_same_value(capsys) -> None:
    hyps, refs = tricky_case(7)
    assert bleu(hyps, refs, 3, progress=True) == bleu(hyps, refs, 3)
    assert self_bleu(refs + hyps, 3, progress=True) == self_bleu(refs + hyps, 3)


def test_bad_inputs() -> None:
    refs = [[1, 2, 3]]
    with pytest.raises(ValueError, match="references is empty"):
        bleu([[1, 2]], [], 4)
    with pytest.raises(ValueError, match="hypotheses is empty"):
        bleu([], refs, 4)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            bleu([[1]], refs, bad)
    with pytest.raises(ValueError, match="at least one n-gram order"):
        bleu_multi([[1]], refs, ns=())
    with pytest.raises(ValueError, match="is a string"):
        bleu(["a cat sat"], refs, 2)
    with pytest.raises(ValueError, match="single string"):
        bleu("a cat", refs, 2)
    with pytest.raises(ValueError, match="not a sequence of tokens"):
        bleu([5], refs, 2)
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([[1, 2, 3]], 2)
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([], 2)
    with pytest.raises(ValueError, match="track_owners"):
        BleuScorer(refs).sentence_bleu([1], 2, exclude=0)
    with pytest.raises(ValueError, match="out of range"):
        BleuScorer.from_samples(refs + refs).sentence_bleu([1], 2, exclude=2)
    with pytest.raises(ValueError, match="exceeds this scorer's max_n"):
        BleuScorer(refs, 2).sentence_bleu([1], 3)
    assert math.isfinite(bleu([[1]], refs, 9))  # any n >= 1 is accepted
