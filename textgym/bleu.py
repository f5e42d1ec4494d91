"""Exact, fast BLEU-n and Self-BLEU-n as the text-GAN literature defines them.

Definition (Texygen, RelGAN, TextGAN-PyTorch): for each hypothesis, nltk's

.. code-block:: python

    sentence_bleu(references, hyp, weights=(1 / n,) * n,
                  smoothing_function=SmoothingFunction().method1)

against the *whole* reference set, and the score is the mean over hypotheses. Self-BLEU-n scores
each sample against all the *other* samples (never against itself; an identical copy of it among
the others is another sample and does count).

nltk's sentence score depends on the reference set only through, for every n-gram order k,
the maximum count of each k-gram over the references (the clip of the modified precision) and
through the set of reference lengths (the closest length, ties broken toward the shorter one).
:class:`BleuScorer` precomputes both once, so each hypothesis costs O(its length · n) dict
look-ups instead of a pass over every reference. For Self-BLEU it also keeps, for each n-gram whose
maximum count is held by a single sample, that owner and the runner-up count, and the multiset of
lengths, so "every sample but ``i``" is exact without rebuilding anything. One scoring path
(:meth:`BleuScorer.sentence_stats` with its ``exclude`` hook) serves both metrics.

The arithmetic replays nltk's float operations in the same order (precision ``m / d`` or
``0.1 / d`` for a zero numerator, ``w * log(p)`` summed with ``math.fsum``, ``exp``, brevity
penalty ``exp(1 - r / c)``), so sentence scores are bit-identical to nltk 3.x's.

Edge cases, as in nltk:

- a hypothesis with no matching unigram (in particular an *empty* hypothesis) scores exactly 0
  and still counts in the mean (it adds 0 to the sum and 1 to the number of hypotheses);
- a hypothesis shorter than ``n`` has no k-grams for ``k > len``: those orders have precision
  ``0.1 / 1`` (method1's epsilon over nltk's denominator ``max(1, 0)``);
- empty reference sentences are allowed; they only contribute their length 0.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from typing import Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

Tokens = Sequence[Hashable]
NGram = Tuple[Hashable, ...]

#: method1's epsilon: the numerator given to an n-gram order with no match.
EPSILON = 0.1

__all__ = ["BleuScorer", "bleu", "bleu_multi", "self_bleu", "self_bleu_multi"]


# ---------------------------------------------------------------------------- input checks
def _check_order(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1 (BLEU-n uses 1..n-grams; 2..5 are usual), got {n!r}")
    return n


def _check_orders(ns: Iterable[int]) -> Tuple[int, ...]:
    orders = tuple(_check_order(n, "each order in ns") for n in ns)
    if not orders:
        raise ValueError("ns must name at least one n-gram order, e.g. ns=(2, 3, 4, 5)")
    return orders


def _as_corpus(sentences: Iterable[Tokens], name: str, minimum: int = 1) -> List[Tuple[Hashable, ...]]:
    """Sentences as tuples of tokens; arrays and tensors go through ``tolist()``; at least ``minimum``."""
    if isinstance(sentences, (str, bytes)):
        raise ValueError(f"{name} must be a list of token lists, got a single string")
    if hasattr(sentences, "tolist"):  # numpy array / torch tensor of shape (N, T)
        sentences = sentences.tolist()
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, (str, bytes)):
            raise ValueError(
                f"{name}[{i}] is a string ({s[:30]!r}); pass token lists such as line.split(), "
                "not whole sentences")
        if hasattr(s, "tolist"):
            s = s.tolist()
        try:
            out.append(tuple(s))
        except TypeError:
            raise ValueError(f"{name}[{i}] is a {type(s).__name__}, not a sequence of tokens") from None
    if not out:
        raise ValueError(f"{name} is empty: BLEU needs at least {minimum} sentence(s) in it")
    if len(out) < minimum:
        raise ValueError(f"{name} holds {len(out)} sentence(s); at least {minimum} are needed")
    return out


def _ngrams(sentence: Tuple[Hashable, ...], k: int) -> List[NGram]:
    """The k-grams of ``sentence`` in order (empty when it is shorter than k), as nltk's ``ngrams``."""
    return list(zip(*[sentence[j:] for j in range(k)], strict=False))  # as long as the shortest slice


def _count(grams: List[NGram]) -> Dict[NGram, int]:
    """Counts of ``grams``; most sentences repeat no n-gram, which ``dict.fromkeys`` does faster."""
    counts = dict.fromkeys(grams, 1)
    return counts if len(counts) == len(grams) else Counter(grams)


# ---------------------------------------------------------------------------- scorer
class BleuScorer:
    """nltk ``sentence_bleu`` (method1 smoothing) against a fixed reference set, from precomputed counts.

    :param references: the reference sentences (token sequences of any hashable tokens)
    :param max_n: the highest n-gram order that will be asked for (scores for any ``n <= max_n``)
    :param track_owners: also keep what :meth:`sentence_stats` needs for ``exclude=i``
        (Self-BLEU); :meth:`from_samples` sets it
    """

    def __init__(self, references: Iterable[Tokens], max_n: int = 4, *, track_owners: bool = False) -> None:
        self.max_n = _check_order(max_n, "max_n")
        self.references = _as_corpus(references, "references")
        self.track_owners = track_owners
        # _max[k - 1][g]: the largest count of k-gram g in any one reference.
        self._max: List[Dict[NGram, int]] = [{} for _ in range(self.max_n)]
        # _solo[k - 1][g] = (owner, runner_up): only for k-grams whose largest count is held by a
        # single reference ``owner``; runner_up is the largest count among the other references.
        self._solo: List[Dict[NGram, Tuple[int, int]]] = [{} for _ in range(self.max_n)]
        for i, ref in enumerate(self.references):
            self._add(i, ref)
        self._ref_lens = [len(r) for r in self.references]
        self._len_counts = Counter(self._ref_lens)
        self._lengths = sorted(self._len_counts)  # distinct reference lengths, ascending

    @classmethod
    def from_samples(cls, samples: Iterable[Tokens], max_n: int = 4) -> BleuScorer:
        """A scorer whose references are ``samples``, ready for ``exclude=i`` (Self-BLEU)."""
        return cls(samples, max_n, track_owners=True)

    def __len__(self) -> int:
        return len(self.references)

    def _add(self, index: int, ref: Tuple[Hashable, ...]) -> None:
        """Fold reference ``index``'s n-gram counts into the per-order maxima (and owners)."""
        track = self.track_owners
        for k in range(1, min(self.max_n, len(ref)) + 1):
            best, solo = self._max[k - 1], self._solo[k - 1]
            for g, c in _count(_ngrams(ref, k)).items():
                m = best.get(g, 0)
                if c > m:  # a new maximum; the old one is now the runner-up
                    best[g] = c
                    if track:
                        solo[g] = (index, m)
                elif not track:
                    continue
                elif c == m:  # a tie: excluding one reference changes nothing
                    solo.pop(g, None)
                else:
                    s = solo.get(g)
                    if s is not None and c > s[1]:
                        solo[g] = (s[0], c)

    def _check_exclude(self, exclude: Optional[int]) -> None:
        if exclude is None:
            return
        if not self.track_owners:
            raise ValueError("exclude= needs a scorer built with track_owners=True (BleuScorer.from_samples)")
        if not 0 <= exclude < len(self.references):
            raise ValueError(f"exclude={exclude} is out of range for {len(self.references)} references")
        if len(self.references) < 2:
            raise ValueError("excluding the only reference leaves none to score against")

    def closest_ref_len(self, hyp_len: int, exclude: Optional[int] = None) -> int:
        """The reference length closest to ``hyp_len`` (ties: the shorter), without reference ``exclude``."""
        lens = self._lengths
        drop = None
        if exclude is not None and self._len_counts[self._ref_lens[exclude]] == 1:
            drop = self._ref_lens[exclude]  # its length is gone with it
        i = bisect_left(lens, hyp_len)
        lo, hi = i - 1, i  # lens[lo] < hyp_len <= lens[hi]
        if lo >= 0 and lens[lo] == drop:
            lo -= 1
        if hi < len(lens) and lens[hi] == drop:
            hi += 1
        if hi >= len(lens):
            return lens[lo]
        if lo < 0:
            return lens[hi]
        return lens[lo] if hyp_len - lens[lo] <= lens[hi] - hyp_len else lens[hi]

    def sentence_stats(
        self, hypothesis: Tokens, n: Optional[int] = None, exclude: Optional[int] = None
    ) -> Tuple[List[int], int, int]:
        """The sufficient statistics of nltk's sentence BLEU for orders 1..n (default ``max_n``).

        :param hypothesis: one token sequence
        :param n: the highest order to count (at most ``max_n``)
        :param exclude: score against every reference but this index (Self-BLEU)
        :return: ``(matches, hyp_len, ref_len)``: clipped match counts per order 1..n, the
            hypothesis length and the closest reference length
        """
        n = self.max_n if n is None else n
        if n > self.max_n:
            raise ValueError(f"n={n} exceeds this scorer's max_n={self.max_n}")
        self._check_exclude(exclude)
        hyp = hypothesis if isinstance(hypothesis, tuple) else tuple(hypothesis)
        matches = [0] * n
        for k in range(1, min(n, len(hyp)) + 1):
            best = self._max[k - 1]
            solo = self._solo[k - 1] if exclude is not None else None
            total = 0
            for g, c in _count(_ngrams(hyp, k)).items():
                r = best.get(g, 0)
                if r and solo is not None:
                    s = solo.get(g)
                    if s is not None and s[0] == exclude:
                        r = s[1]  # the largest count among the other references
                total += c if c < r else r
            matches[k - 1] = total
        return matches, len(hyp), self.closest_ref_len(len(hyp), exclude)

    def sentence_bleu(self, hypothesis: Tokens, n: int = 4, *, exclude: Optional[int] = None) -> float:
        """nltk's ``sentence_bleu`` of one hypothesis (uniform weights over 1..n, method1)."""
        return _bleu_from_stats(*self.sentence_stats(hypothesis, _check_order(n), exclude), n)

    def corpus_scores(
        self, hypotheses: Optional[Iterable[Tokens]], ns: Sequence[int], *, self_exclude: bool = False,
        progress: bool = False, desc: str = "BLEU",
    ) -> Dict[int, List[float]]:
        """Sentence scores of every hypothesis for every order in ``ns``, counting n-grams once.

        :param hypotheses: the token sequences to score; None with ``self_exclude`` (then the
            references themselves are scored)
        :param self_exclude: hypothesis ``i`` is scored without reference ``i`` (Self-BLEU; the
            hypotheses must then be this scorer's references, in order)
        :return: ``{n: [score of each hypothesis]}``
        """
        orders = _check_orders(ns)
        top = max(orders)
        if self_exclude and not self.track_owners:
            raise ValueError("self_exclude needs a scorer built with BleuScorer.from_samples")
        if self_exclude:
            hyps = self.references
        elif hypotheses is None:
            raise ValueError("corpus_scores needs hypotheses (None is for self_exclude=True only)")
        else:
            hyps = _as_corpus(hypotheses, "hypotheses")
        iterator: Iterable = enumerate(hyps)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=len(hyps), desc=desc, unit="sent")
        out: Dict[int, List[float]] = {n: [] for n in orders}
        for i, hyp in iterator:
            matches, hyp_len, ref_len = self.sentence_stats(hyp, top, i if self_exclude else None)
            for n in orders:
                out[n].append(_bleu_from_stats(matches, hyp_len, ref_len, n))
        return out


def _bleu_from_stats(matches: Sequence[int], hyp_len: int, ref_len: int, n: int) -> float:
    """nltk's sentence BLEU-n with method1 smoothing from clipped matches, replaying its float ops."""
    if matches[0] == 0:  # nltk: `if p_numerators[1] == 0: return 0` (this covers hyp_len == 0)
        return 0.0
    w = 1 / n
    logs = []
    for k in range(1, n + 1):
        den = max(1, hyp_len - k + 1)  # nltk: max(1, number of hypothesis k-grams)
        num = matches[k - 1]
        logs.append(w * math.log(num / den if num else EPSILON / den))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(math.fsum(logs))


def _mean(xs: List[float]) -> float:
    return math.fsum(xs) / len(xs)


# ---------------------------------------------------------------------------- public functions
def bleu_multi(
    hypotheses: Iterable[Tokens], references: Iterable[Tokens], ns: Sequence[int] = (2, 3, 4, 5),
    *, progress: bool = False,
) -> Dict[int, float]:
    """BLEU-n for every n in ``ns`` at once: the mean over hypotheses of nltk's sentence BLEU
    against all ``references`` (uniform weights, method1 smoothing).

    :param hypotheses: generated sentences, token sequences (str, int or any hashable tokens)
    :param references: the reference sentences
    :param ns: n-gram orders (each >= 1; the literature reports 2..5)
    :param progress: show a tqdm progress bar
    :return: ``{n: BLEU-n}``; empty hypotheses count as 0 in the mean (see the module docstring)
    """
    orders = _check_orders(ns)
    hyps = _as_corpus(hypotheses, "hypotheses")
    scorer = BleuScorer(references, max(orders))
    scores = scorer.corpus_scores(hyps, orders, progress=progress)
    return {n: _mean(s) for n, s in scores.items()}


def bleu(hypotheses: Iterable[Tokens], references: Iterable[Tokens], n: int, *, progress: bool = False) -> float:
    """BLEU-n: the mean over hypotheses of nltk's ``sentence_bleu(references, hyp,
    weights=(1/n,)*n, smoothing_function=SmoothingFunction().method1)``, equal to it to the last bit
    per sentence.

    An empty hypothesis (or one with no unigram in any reference) scores 0 and counts in the mean.

    :param hypotheses: generated sentences, token sequences (str, int or any hashable tokens)
    :param references: the whole reference set each hypothesis is scored against
    :param n: the highest n-gram order (>= 1; 2..5 in the literature)
    :param progress: show a tqdm progress bar
    :raises ValueError: empty hypotheses or references, a sentence given as a string, bad ``n``
    """
    return bleu_multi(hypotheses, references, (_check_order(n),), progress=progress)[n]


def self_bleu_multi(
    samples: Iterable[Tokens], ns: Sequence[int] = (2, 3, 4, 5), *, progress: bool = False
) -> Dict[int, float]:
    """Self-BLEU-n for every n in ``ns`` at once (see :func:`self_bleu`)."""
    orders = _check_orders(ns)
    corpus = _as_corpus(samples, "samples (Self-BLEU scores each against the others)", minimum=2)
    scorer = BleuScorer.from_samples(corpus, max(orders))
    scores = scorer.corpus_scores(None, orders, self_exclude=True, progress=progress, desc="Self-BLEU")
    return {n: _mean(s) for n, s in scores.items()}


def self_bleu(samples: Iterable[Tokens], n: int, *, progress: bool = False) -> float:
    """Self-BLEU-n: the mean over samples of nltk's sentence BLEU-n (method1) of each sample
    against all the *other* samples.

    A sample is never its own reference; an identical copy of it elsewhere in ``samples`` is
    another sample and does count. Empty samples score 0 and count in the mean.

    :param samples: generated sentences, token sequences (at least 2)
    :param n: the highest n-gram order (>= 1; 2..5 in the literature)
    :param progress: show a tqdm progress bar
    :raises ValueError: fewer than 2 samples, a sentence given as a string, bad ``n``
    """
    return self_bleu_multi(samples, (_check_order(n),), progress=progress)[n]
