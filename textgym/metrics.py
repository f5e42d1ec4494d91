"""Likelihood metrics and the quality-diversity frontier.

Definitions (as the literature uses them):

- NLL-oracle: mean per-token negative log-likelihood, under the oracle, of samples drawn from
  the generator (quality; lower is better). Lowering the temperature lowers it: it rewards
  mode collapse, so report it with NLL-test.
- NLL-test: mean per-token negative log-likelihood, under the generator, of held-out real
  sequences (coverage/diversity; lower is better).
- The frontier: both (or BLEU and Self-BLEU on corpora) measured while sweeping the sampling
  temperature.

Models follow :class:`textgym.protocols.SequenceModel` (``sample`` and ``log_probs``).
Sampled sequences are cut at their first ``<eos>`` when the data has one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch

from discriminators.base import eval_mode
from textgym.masks import length_mask, strip_padding
from textgym.protocols import SequenceModel, device_of
from textgym.rewards import finish_sequences


def _eos_pad(model: SequenceModel) -> tuple[Optional[int], int]:
    return getattr(model, "eos_id", None), getattr(model, "pad_id", model.vocab_size)


@torch.no_grad()
def sample_sequences(
    model: SequenceModel, n: int, *, temperature: float = 1.0, seed: int = 0, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of ``model`` as ``(tokens (n, T) padded, lengths (n,))``, reproducible from ``seed``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = device_of(model, torch.device("cpu"))
    g = torch.Generator(device=device).manual_seed(seed)
    chunks = [model.sample(min(batch_size, n - i), temperature=temperature, generator=g) for i in range(0, n, batch_size)]
    eos, pad = _eos_pad(model)
    return finish_sequences(torch.cat(chunks), eos, pad)


def masked_nll(log_probs: torch.Tensor, lengths: torch.Tensor, keep: Optional[torch.Tensor] = None) -> float:
    """Mean of ``-log_probs`` (N, T) over positions < lengths (N,) (and where ``keep`` (N, T) is True)."""
    mask = length_mask(lengths.to(log_probs.device), log_probs.shape[1])
    if keep is not None:
        mask = mask & keep.to(mask.device)
    return float(-(log_probs * mask).sum() / mask.sum().clamp(min=1))


@torch.no_grad()
def sequence_log_probs(model: SequenceModel, tokens: torch.Tensor, lengths: torch.Tensor, *, temperature: float = 1.0,
                       batch_size: int = 1000) -> torch.Tensor:
    """Teacher-forced ``log p(x_t | x_<t)`` of tokens (N, T) under ``model`` (at a sampling
    temperature: the model's ``log_probs(tokens, temperature=τ)``), padding replaced by 0."""
    kw = {} if temperature == 1.0 else {"temperature": temperature}
    safe = strip_padding(tokens, lengths)
    with eval_mode(model):
        return torch.cat([model.log_probs(safe[i : i + batch_size], **kw).float().cpu() for i in range(0, len(safe), batch_size)])


def nll_oracle(model: SequenceModel, oracle: SequenceModel, n: int = 5000, *, temperature: float = 1.0,
               seed: int = 0) -> float:
    """NLL-oracle: the oracle's mean per-token NLL of ``n`` samples of ``model`` (nats)."""
    tokens, lengths = sample_sequences(model, n, temperature=temperature, seed=seed)
    return oracle_nll(oracle, tokens, lengths)


def oracle_nll(oracle: SequenceModel, tokens: torch.Tensor, lengths: torch.Tensor) -> float:
    """The oracle's mean per-token NLL of given samples ``tokens`` (N, T) over positions < ``lengths``:
    NLL-oracle when the samples are a generator's. Every NLL-oracle of the project is computed here."""
    device = device_of(oracle, tokens.device)
    return masked_nll(sequence_log_probs(oracle, tokens.to(device), lengths.to(device)), lengths)


def nll_test(model: SequenceModel, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None, *,
             temperature: float = 1.0) -> float:
    """NLL-test: ``model``'s mean per-token NLL (nats) of held-out ``tokens`` (N, T) at a temperature.

    At temperature τ the model's distribution is softmax(logits / τ) (τ ≠ 1 calls
    ``model.log_probs(tokens, temperature=τ)``).
    """
    return nll_test_parts(model, tokens, lengths, temperature=temperature)["nll_test"]


def nll_test_parts(model: SequenceModel, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None, *,
                   temperature: float = 1.0, unknown_id: Optional[int] = None) -> Dict[str, float]:
    """``{"nll_test": ...}`` of :func:`nll_test` and, when the held-out ``tokens`` hold
    ``unknown_id`` (a corpus's ``<unk>``: test words missing from the training vocabulary),
    ``"nll_test_known"``: the same mean over the other positions, from the same pass. The
    generator never sees ``<unk>`` in training when every training word is in the vocabulary, so
    those positions weigh how little mass it gives an unseen token, not how well it models text.
    A corpus that writes ``<unk>`` itself (PTB) has it in training too, under the same id: there
    ``nll_test_known`` also leaves out the test's own ``<unk>`` tokens, which the generator learned."""
    if len(tokens) == 0:
        raise ValueError("nll_test needs at least one held-out sequence")
    if lengths is None:
        lengths = torch.full((len(tokens),), tokens.shape[1], dtype=torch.long)
    device = device_of(model, tokens.device)
    tokens, lengths = tokens.to(device), lengths.to(device)
    lp = sequence_log_probs(model, tokens, lengths, temperature=temperature)
    out = {"nll_test": masked_nll(lp, lengths)}
    if unknown_id is not None:
        unknown = tokens.cpu() == unknown_id
        if bool((unknown & length_mask(lengths.cpu(), tokens.shape[1])).any()):
            out["nll_test_known"] = masked_nll(lp, lengths, keep=~unknown)
    return out


@dataclass
class FrontierPoint:
    """One point of a quality-diversity curve."""

    model: str
    temperature: float
    quality: float  # NLL-oracle (lower is better) or BLEU (higher is better)
    diversity: float  # NLL-test (lower is better) or Self-BLEU (lower is more diverse)
    quality_name: str
    diversity_name: str


def oracle_frontier(
    models: Dict[str, SequenceModel], oracle: SequenceModel, test_tokens: torch.Tensor,
    test_lengths: Optional[torch.Tensor] = None,
    temperatures: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), n: int = 5000, seed: int = 0,
) -> List[FrontierPoint]:
    """NLL-oracle (quality) against NLL-test (diversity) over sampling temperatures, for each model;
    NLL-oracle on ``n`` samples per temperature (5,000, as :func:`textgym.evaluate.evaluate_generator`)."""
    points = []
    for name, model in models.items():
        for tau in temperatures:
            q = nll_oracle(model, oracle, n, temperature=tau, seed=seed)
            d = nll_test(model, test_tokens, test_lengths, temperature=tau)
            points.append(FrontierPoint(name, float(tau), q, d, "nll_oracle", "nll_test"))
    return points


def corpus_frontier(
    models: Dict[str, SequenceModel], references: List[List[Any]], decode: Any,
    temperatures: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), n: int = 500, order: int = 4, seed: int = 0,
) -> List[FrontierPoint]:
    """BLEU-``order`` against the references (quality) and Self-BLEU-``order`` (diversity) over temperatures.

    ``decode(ids) -> list of tokens`` turns a sampled row into a token list.
    """
    from textgym.bleu import bleu, self_bleu

    points = []
    for name, model in models.items():
        for tau in temperatures:
            tokens, lengths = sample_sequences(model, n, temperature=tau, seed=seed)
            hyps = [decode(row[: int(L)].tolist()) for row, L in zip(tokens, lengths, strict=True)]
            points.append(FrontierPoint(name, float(tau), bleu(hyps, references, order), self_bleu(hyps, order),
                                        f"bleu{order}", f"self_bleu{order}"))
    return points


def points_as_dicts(points: Iterable[FrontierPoint]) -> List[Dict[str, Any]]:
    return [asdict(p) for p in points]


def _lower_is_better(points: Sequence[FrontierPoint]) -> List[tuple[float, float]]:
    """(x, y) with both axes oriented so that lower is better (BLEU is negated)."""
    sign = -1.0 if points[0].quality_name.startswith("bleu") else 1.0
    return [(p.diversity, sign * p.quality) for p in points]


def pareto_front(xy: Sequence[tuple[float, float]]) -> List[tuple[float, float]]:
    """The points no other point beats on both axes (lower is better), sorted by x (y then falls).
    A point with a NaN or infinite coordinate (a metric that could not be measured) is on no
    frontier: NaN compares as neither better nor worse and would hide the other points."""
    front: List[tuple[float, float]] = []
    for x, y in sorted(p for p in xy if math.isfinite(p[0]) and math.isfinite(p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def _interp(front: Sequence[tuple[float, float]], x: float) -> float:
    """The front's quality at diversity ``x`` >= its first point's (:func:`compare_frontiers` asks
    nothing left of either front): linear between its points, its best (last) quality beyond."""
    for (x0, y0), (x1, y1) in zip(front, front[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return front[-1][1]


@dataclass
class FrontierComparison:
    """How curve A's frontier lies against curve B's (both over the same kind of axes).

    Both axes are oriented lower-is-better (BLEU negated). A frontier attains, at a diversity x,
    the quality y of the piecewise-linear curve through its Pareto-efficient points, and beyond
    its last point (worse diversity) its best quality; it attains nothing left of its first point.

    ``verdict``: "dominates" (A attains at least B's quality wherever B attains any, and reaches
    at least as far in diversity, strictly better somewhere), "dominated" (the reverse), "equal",
    or "crosses" (each is better somewhere). ``area``: ∫ (y_B - y_A) dx over ``overlap``, the x
    range that both sweeps cover with their own points (0 when they share none): positive when A
    is better. The area leaves out the flat extensions, so that a collapsed generator whose
    sweep lies far to the right does not collect area where the other curve has no points.
    """

    verdict: str
    area: float
    overlap: tuple[float, float]


def compare_frontiers(a: Sequence[FrontierPoint], b: Sequence[FrontierPoint], *,
                      tol: float = 1e-9) -> FrontierComparison:
    """Compare the Pareto frontiers of two temperature sweeps (see :class:`FrontierComparison`).

    The high-temperature points where both metrics get worse are not on a frontier. Both
    frontiers are piecewise linear, so their difference is linear between the x values of their
    vertices: it is compared at those x values of the common range, and the area is the exact
    trapezoid sum over them (a fixed grid could step over a narrow place where B is better).
    """
    if not a or not b:
        raise ValueError("compare_frontiers needs points on both curves")
    if (a[0].quality_name, a[0].diversity_name) != (b[0].quality_name, b[0].diversity_name):
        raise ValueError(f"the curves measure different things: {a[0].quality_name}/{a[0].diversity_name} against "
                         f"{b[0].quality_name}/{b[0].diversity_name}")
    fa, fb = pareto_front(_lower_is_better(a)), pareto_front(_lower_is_better(b))
    for front, curve in ((fa, a), (fb, b)):
        if not front:
            raise ValueError(f"the sweep of {curve[0].model} has no point with finite {curve[0].quality_name} "
                             f"and {curve[0].diversity_name}")
    lo, hi = max(fa[0][0], fb[0][0]), max(fa[-1][0], fb[-1][0])
    kinks = sorted({x for x, _ in fa + fb})
    xs = [lo] + [x for x in kinks if lo < x < hi] + ([hi] if hi > lo else [])
    diff = [_interp(fb, x) - _interp(fa, x) for x in xs]
    common = min(fa[-1][0], fb[-1][0])  # the area: only where both sweeps have points
    cx = [lo] + [x for x in kinks if lo < x < common] + [common] if common > lo else []
    cd = [_interp(fb, x) - _interp(fa, x) for x in cx]
    area = sum((d0 + d1) / 2 * (x1 - x0) for x0, x1, d0, d1 in zip(cx, cx[1:], cd, cd[1:], strict=False))
    better = max(diff) > tol or fa[0][0] < fb[0][0] - tol  # A is better somewhere, or reaches diversity B cannot
    worse = min(diff) < -tol or fb[0][0] < fa[0][0] - tol
    verdict = "crosses" if better and worse else "dominates" if better else "dominated" if worse else "equal"
    return FrontierComparison(verdict, area, (lo, max(lo, common)))
