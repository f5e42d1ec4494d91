"""BLEU-n / Self-BLEU-n: textgym.bleu against nltk's sentence_bleu loop (method1 smoothing).

Setting (headline): BLEU-4 of the first 1,000 COCO test sentences, each against all 10,000
train sentences, as the literature defines it (mean of nltk sentence BLEU over hypotheses).

- ``ours``: ``textgym.bleu.bleu`` end to end (building the reference counts included), the
  median of ``--repeats`` runs;
- ``nltk``: ``sentence_bleu(train, hyp, (1/4,)*4, method1)`` timed on a subsample of the
  hypotheses and extrapolated per hypothesis to all of them (the full loop takes minutes);
  the same subsample gives the largest absolute difference between our per-sentence scores and
  nltk's;
- Self-BLEU-4 of the same 1,000 sentences (each against the 999 others), the same way;
- without ``--quick``: the full 10,000 x 10,000 BLEU-2..5 in one pass (``bleu_multi``) and
  Self-BLEU-2..5 of the 10,000 test sentences (``self_bleu_multi``).

``ratio`` = nltk time / our time for the headline. The computation runs on the CPU; ``--device``
is accepted for a uniform bench interface and only recorded.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Sequence, Tuple

import nltk
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from common import emit, log, parser
from textgym.bleu import BleuScorer, bleu, bleu_multi, self_bleu, self_bleu_multi
from textgym.data import data_path, read_sentences

METHOD1 = SmoothingFunction().method1


def timed(fn: Callable[[], object], repeats: int) -> Tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` runs, and its last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def nltk_subsample(hyps: Sequence[Sequence[str]], refs_of: Callable[[int], Sequence[Sequence[str]]],
                   n: int, ours: Callable[[int], float], count: int) -> Tuple[float, float]:
    """nltk seconds per hypothesis over the first ``count`` hypotheses, and the largest
    |ours(i) - nltk(i)| among them."""
    weights = (1 / n,) * n
    elapsed, worst = 0.0, 0.0
    for i in range(count):
        refs = refs_of(i)
        t0 = time.perf_counter()
        expected = sentence_bleu(refs, hyps[i], weights, smoothing_function=METHOD1)
        elapsed += time.perf_counter() - t0
        worst = max(worst, abs(ours(i) - expected))
        log(f"  nltk {i + 1}/{count}: {elapsed / (i + 1):.3f} s/sentence")
    return elapsed / count, worst


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--nltk-sentences", type=int, default=None,
                   help="hypotheses timed with nltk (default 20, 4 with --quick)")
    args = p.parse_args()
    train_path, test_path = data_path("coco", "image_coco.txt"), data_path("coco", "test_coco.txt")
    if train_path is None or test_path is None:
        sys.exit("bench/bleu.py needs coco/image_coco.txt and coco/test_coco.txt under $TEXTGYM_DATA or ../shared/data")
    train, test = read_sentences(train_path), read_sentences(test_path)
    n_hyp, n_ref = (100, 2000) if args.quick else (1000, 10000)
    n_nltk = args.nltk_sentences or (4 if args.quick else 20)
    repeats = 1 if args.quick else args.repeats
    if not 1 <= n_nltk <= n_hyp:
        p.error(f"--nltk-sentences must lie in [1, {n_hyp}] (the hypotheses scored), got {n_nltk}")
    hyps, refs = test[:n_hyp], train[:n_ref]
    log(f"BLEU-4: {len(hyps)} COCO test sentences vs {len(refs)} train sentences")

    t_ours, bleu4 = timed(lambda: bleu(hyps, refs, 4), repeats)
    log(f"  ours: {t_ours:.3f} s, BLEU-4 = {bleu4:.6f}")
    scorer = BleuScorer(refs, 4)
    nltk_per, diff = nltk_subsample(hyps, lambda i: refs, 4, lambda i: scorer.sentence_bleu(hyps[i], 4), n_nltk)
    t_nltk = nltk_per * len(hyps)
    log(f"  nltk: {nltk_per:.3f} s/sentence -> {t_nltk:.1f} s extrapolated; ratio {t_nltk / t_ours:.0f}x; "
        f"max |diff| {diff:.2e}")

    log(f"Self-BLEU-4 of the {len(hyps)} test sentences")
    t_self, sbleu4 = timed(lambda: self_bleu(hyps, 4), repeats)
    samples = BleuScorer.from_samples(hyps, 4)
    self_per, self_diff = nltk_subsample(
        hyps, lambda i: hyps[:i] + hyps[i + 1:], 4, lambda i: samples.sentence_bleu(hyps[i], 4, exclude=i), n_nltk)
    t_self_nltk = self_per * len(hyps)
    log(f"  ours: {t_self:.3f} s, Self-BLEU-4 = {sbleu4:.6f}; nltk {t_self_nltk:.1f} s extrapolated; "
        f"max |diff| {self_diff:.2e}")

    figures = {
        "hypotheses": len(hyps), "references": len(refs),
        "bleu4": bleu4, "bleu4_ours_s": t_ours,
        "bleu4_nltk_s_per_sentence": nltk_per, "bleu4_nltk_s_extrapolated": t_nltk,
        "bleu4_nltk_sentences_timed": n_nltk, "bleu4_max_abs_diff": diff,
        "self_bleu4": sbleu4, "self_bleu4_ours_s": t_self,
        "self_bleu4_nltk_s_extrapolated": t_self_nltk, "self_bleu4_max_abs_diff": self_diff,
        "self_bleu4_ratio": t_self_nltk / t_self,
    }
    if not args.quick:
        log(f"BLEU-2..5: all {len(test)} test sentences vs all {len(train)} train sentences, one pass")
        t_full, full = timed(lambda: bleu_multi(test, train, (2, 3, 4, 5)), 1)
        log(f"  {t_full:.2f} s: {full}")
        log(f"Self-BLEU-2..5 of all {len(test)} test sentences, one pass")
        t_full_self, full_self = timed(lambda: self_bleu_multi(test, (2, 3, 4, 5)), 1)
        log(f"  {t_full_self:.2f} s: {full_self}")
        figures.update({
            "full_10k_bleu2to5_s": t_full, "full_10k_bleu": {f"bleu{n}": v for n, v in full.items()},
            "full_10k_self_bleu2to5_s": t_full_self,
            "full_10k_self_bleu": {f"self_bleu{n}": v for n, v in full_self.items()},
        })
    emit({
        "benchmark": "bleu", "device": args.device, "quick": args.quick,
        "setting": f"BLEU-4, {len(hyps)} COCO test sentences vs {len(refs)} train sentences",
        "ratio": t_nltk / t_ours, "figures": figures,
        "env": {"python": platform.python_version(), "nltk": nltk.__version__, "cpus": os.cpu_count()},
    })


if __name__ == "__main__":
    main()
