"""textgym.stats against closed forms and coverage, and the frontier verdicts on hand-made curves."""
from __future__ import annotations

import math
import random
import statistics

import pytest

from textgym.metrics import FrontierPoint, compare_frontiers, pareto_front
from textgym.stats import Interval, paired_interval, t_cdf, t_quantile, welch_interval


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_t_quantiles_match_the_closed_forms_of_one_and_two_degrees_of_freedom(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)      # Cauchy
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(1 - p, 2) == pytest.approx(-t_quantile(p, 2), rel=1e-12)


def test_t_distribution_tends_to_the_normal_and_its_cdf_inverts_its_quantile():
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    for huge in (1e15, 1e300, math.inf):  # the normal's quantile, not the garbage of a lost betainc
        assert t_quantile(0.975, huge) == pytest.approx(1.959964, abs=1e-5)
    for df in (1, 2.5, 7, 30):
        for p in (0.55, 0.8, 0.99):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(1.0, 3)


def test_paired_interval_of_three_seeds_is_the_closed_form():
    a, b = [9.0, 9.3, 8.7], [9.5, 9.4, 9.4]
    d = [x - y for x, y in zip(a, b, strict=True)]
    half = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025) * statistics.stdev(d) / math.sqrt(3)  # t(0.975, 2) closed form
    ci = paired_interval(a, b)
    assert ci is not None and ci.df == 2
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((statistics.fmean(d), statistics.fmean(d) - half,
                                                            statistics.fmean(d) + half), rel=1e-9)
    assert paired_interval([1.0], [2.0]) is None


def test_welch_interval_with_equal_variances_and_sizes_has_2n_minus_2_degrees_of_freedom():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]        # equal variances (1) and sizes: df = 2 (n - 1) = 4
    ci = welch_interval(a, b)
    assert ci is not None and ci.df == pytest.approx(4.0)
    half = 2.7764451051977987 * math.sqrt(1 / 3 + 1 / 3)  # t(0.975, 4)
    assert (ci.low, ci.high) == pytest.approx((-2 - half, -2 + half), rel=1e-9)
    assert not ci.excludes_zero  # |estimate| 2 < half-width 2.27
    same = welch_interval([2.0, 2.0], [1.0, 1.0])
    assert same is not None and (same.low, same.high) == (1.0, 1.0)


def test_t_quantiles_of_huge_degrees_of_freedom_approach_the_normals():
    """Past 1e10 degrees of freedom the t was the df = 1e10 one, whose incomplete beta had lost
    3e-6; Welch's df divided by an underflowed 0 for tiny variances."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.975)
    for df in (1e5, 1e6, 1e7, 1e9):  # the t's expansion z + (z^3 + z) / (4 df) is exact to O(1/df^2) here
        assert t_quantile(0.975, df) == pytest.approx(z + (z ** 3 + z) / (4 * df), abs=1e-9)
    assert t_quantile(0.975, 1e12) == pytest.approx(z, abs=1e-9) and t_quantile(0.975, math.inf) == pytest.approx(z, abs=1e-9)
    for df in (2.0, 1e12):  # the tails (the expansion's t³ made inf a NaN and 1e200 an OverflowError)
        assert (t_cdf(math.inf, df), t_cdf(1e200, df), t_cdf(-math.inf, df)) == (1.0, 1.0, 0.0)
    ci = welch_interval([0.0, 1e-160], [0.0, 0.0])
    assert ci is not None and ci.df == math.inf and ci.low < 5e-161 < ci.high


def test_intervals_cover_the_true_difference_95_percent_of_the_time():
    rng = random.Random(0)
    n_trials, hits_p, hits_w = 4000, 0, 0
    for _ in range(n_trials):
        a = [rng.gauss(1.0, 1.0) for _ in range(3)]
        b = [rng.gauss(0.0, 2.0) for _ in range(4)]
        cp = paired_interval(a, b[:3])
        cw = welch_interval(a, b)
        assert cp is not None and cw is not None
        hits_p += cp.low <= 1.0 <= cp.high
        hits_w += cw.low <= 1.0 <= cw.high
    assert abs(hits_p / n_trials - 0.95) < 0.012        # exact for normal differences (sd of the rate: 0.0034)
    assert 0.94 < hits_w / n_trials < 0.975              # Welch is approximate and slightly conservative here


def curve(name, pts, q="nll_oracle", d="nll_test"):
    return [FrontierPoint(name, t, qv, dv, q, d) for t, (dv, qv) in pts]


def test_frontier_verdicts_on_hand_made_curves():
    # B: the line y = 10 - x over x in [8, 9]; A the same line shifted down by 0.5 (better everywhere)
    b = curve("b", [(0.5, (9.0, 1.0)), (1.0, (8.0, 2.0))])
    a = curve("a", [(0.5, (9.0, 0.5)), (1.0, (8.0, 1.5))])
    comp = compare_frontiers(a, b)
    assert comp.verdict == "dominates" and comp.area == pytest.approx(0.5) and comp.overlap == (8.0, 9.0)
    assert compare_frontiers(b, a).verdict == "dominated" and compare_frontiers(b, a).area == pytest.approx(-0.5)
    assert compare_frontiers(a, a).verdict == "equal"
    # C crosses B: below it at x = 8, above at x = 9; the areas cancel
    c = curve("c", [(0.5, (9.0, 1.4999999)), (1.0, (8.0, 1.5))])
    comp = compare_frontiers(c, b)
    assert comp.verdict == "crosses" and comp.area == pytest.approx(0.0, abs=1e-6)


def test_frontier_ignores_points_that_are_worse_on_both_axes_and_orients_bleu():
    # the high-temperature point (9.5, 3.0) is worse than (8.0, 2.0) on both axes: not on the frontier
    pts = [(9.0, 1.0), (8.0, 2.0), (9.5, 3.0)]
    assert pareto_front(pts) == [(8.0, 2.0), (9.0, 1.0)]
    # BLEU: higher is better, Self-BLEU lower; A has more BLEU at every Self-BLEU
    a = curve("a", [(0.5, (0.9, 0.6)), (1.0, (0.7, 0.4))], "bleu4", "self_bleu4")
    b = curve("b", [(0.5, (0.9, 0.5)), (1.0, (0.7, 0.3))], "bleu4", "self_bleu4")
    assert compare_frontiers(a, b).verdict == "dominates"
    with pytest.raises(ValueError, match="different things"):
        compare_frontiers(a, curve("b", [(1.0, (8.0, 2.0))]))


def test_a_frontier_attains_its_best_quality_at_worse_diversity_but_nothing_at_better():
    a = curve("a", [(1.0, (8.0, 9.0))])
    assert compare_frontiers(a, curve("b", [(1.0, (8.5, 9.5))])).verdict == "dominates"
    # B reaches diversity 7.5 that A cannot, A has the better quality from 8 on: each is better somewhere
    comp = compare_frontiers(a, curve("b", [(1.0, (7.5, 9.5))]))
    assert comp.verdict == "crosses" and comp.overlap == (8.0, 8.0)


def test_the_area_counts_only_the_range_both_sweeps_cover():
    # A collapsed generator: excellent quality, but only at diversities far beyond B's sweep
    b = curve("b", [(0.6, (8.4, 7.7)), (1.0, (7.6, 9.7))])
    collapsed = curve("a", [(0.6, (16.0, 0.9)), (1.0, (12.0, 1.0))])
    comp = compare_frontiers(collapsed, b)
    assert comp.verdict == "crosses" and comp.area == 0.0  # B reaches diversity A cannot; no shared range
    partial = curve("a", [(0.6, (9.0, 6.5)), (1.0, (8.0, 8.0))])
    comp = compare_frontiers(partial, b)  # shared range [8.0, 8.4]: A lies 0.7 then 0.3 below B
    assert comp.overlap == (8.0, 8.4) and comp.area == pytest.approx(0.2, abs=1e-6)
    assert comp.verdict == "crosses"  # B still reaches diversities below 8.0 that A cannot


def test_a_crossing_narrower_than_any_grid_is_found_and_the_area_is_exact():
    # B is better than A only within about 0.01 of x = 5 (A's vertex at 5.0 lies above B's segment)
    a = curve("a", [(0.1, (0.0, 10.0)), (0.2, (5.0, 5.0)), (0.3, (5.01, 1.0)), (0.4, (10.0, 0.0))])
    b = curve("b", [(0.1, (0.0, 10.1)), (0.2, (4.995, 5.1)), (0.3, (5.002, 4.9)), (0.4, (10.0, 0.1))])
    assert compare_frontiers(a, b).verdict == "crosses" and compare_frontiers(b, a).verdict == "crosses"

    def line(pts, x):  # the frontier through (diversity, quality) vertices, by linear interpolation
        pts = sorted(pts)
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        raise AssertionError(x)

    xa = [(p.diversity, p.quality) for p in a]
    xb = [(p.diversity, p.quality) for p in b]
    n = 200_000  # midpoint rule on a fine grid: an independent estimate of the area
    area = sum(line(xb, (i + 0.5) * 10 / n) - line(xa, (i + 0.5) * 10 / n) for i in range(n)) * 10 / n
    assert compare_frontiers(a, b).area == pytest.approx(area, abs=1e-6)


def test_an_interval_prints_three_decimals_or_scientific_notation_when_every_figure_rounds_to_zero():
    assert str(Interval(0.1234, 0.0456, 0.2011, 2.0, 0.95)) == "+0.123 [+0.046, +0.201] *"
    assert str(Interval(-0.01, -0.05, 0.03, 2.0, 0.95)) == "-0.010 [-0.050, +0.030]"
    assert str(Interval(2.68e-4, 9.0e-5, 4.46e-4, 2.0, 0.95)) == "+2.7e-04 [+9.0e-05, +4.5e-04] *"
    assert str(Interval(0.0, 0.0, 0.0, float("inf"), 0.95)) == "+0.000 [+0.000, +0.000]"
    # a bound that excludes 0 by less than 0.0005 would print as "-0.000" next to its "*"
    assert str(Interval(-0.032, -0.065, -3.84e-4, 2.0, 0.95)) == "-3.2e-02 [-6.5e-02, -3.8e-04] *"
    assert str(Interval(-0.032, -0.065, 3.84e-4, 2.0, 0.95)) == "-0.032 [-0.065, +0.000]"  # includes 0: as before


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_by_name_instead_of_failing_inside_statistics(bad):
    from textgym.stats import mean_sd

    for call in (lambda: paired_interval([bad, 1.0, 2.0], [0.0, 0.0, 0.0]), lambda: mean_sd([bad, 1.0]),
                 lambda: welch_interval([bad, 1.0], [0.0, 1.0])):
        with pytest.raises(ValueError, match=f"values must be finite, got {bad}"):
            call()
    with pytest.raises(ValueError, match="degrees of freedom must be > 0, got nan"):
        t_quantile(0.975, math.nan)  # returned 4.5e-13


def test_a_point_with_an_unmeasured_metric_is_on_no_frontier():
    """A NaN quality at the lowest diversity made it the whole frontier, so every difference was
    NaN and the verdict "equal"; by hand, without it: B reaches x = 1 where A has nothing, A is
    better at x = 2 (by 1) and x = 3 (by 0.5), so they cross with area (1 + 0.5) / 2 = 0.75."""
    a = curve("a", [(0.5, (1.0, math.nan)), (1.0, (2.0, 1.0)), (1.5, (3.0, 0.5))])
    b = curve("b", [(0.5, (1.0, 3.0)), (1.0, (2.0, 2.0)), (1.5, (3.0, 1.0))])
    comp = compare_frontiers(a, b)
    assert comp.verdict == "crosses" and comp.area == pytest.approx(0.75) and comp.overlap == (2.0, 3.0)
    assert pareto_front([(math.nan, 0.1), (1.0, 3.0), (3.0, 0.5)]) == pareto_front([(1.0, 3.0), (math.nan, 0.1), (3.0, 0.5)])
    with pytest.raises(ValueError, match="sweep of a has no point with finite"):
        compare_frontiers(curve("a", [(1.0, (math.inf, 1.0))]), b)


def test_welch_df_with_unequal_sizes_is_the_welch_satterthwaite_formula():
    """S1: df uses n_a - 1 for a's term and n_b - 1 for b's (the suite only has equal sizes)."""
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0]
    va, vb = 2.5 / 5, 2.0 / 2                     # s²/n
    df = (va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 1)
    ci = welch_interval(a, b)
    assert ci.df == pytest.approx(df, rel=1e-12)


def test_a_90_percent_interval_uses_the_95th_percentile():
    """S2, S3: the level argument reaches the quantile (t(0.95, 2) in closed form)."""
    a, b = [9.0, 9.3, 8.7], [9.5, 9.4, 9.4]
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    t95 = (2 * 0.95 - 1) / math.sqrt(2 * 0.95 * 0.05)
    ci = paired_interval(a, b, level=0.9)
    assert ci.high - ci.estimate == pytest.approx(t95 * sd / math.sqrt(3), rel=1e-9)
    w = welch_interval([1.0, 2.0, 3.0], [3.0, 4.0, 5.0], level=0.9)
    assert w.high - w.estimate == pytest.approx(2.131846786 * math.sqrt(2 / 3), rel=1e-8)  # t(0.95, 4)


def test_a_frontier_that_reaches_better_quality_beyond_the_others_last_point_is_better_there():
    """M2: B goes on to (10, 0.5) where A's flat extension gives 1.0; A is better at x = 9 (1.0 < 1.25).
    Each is better somewhere: 'crosses' (the mutant compared up to x = 9 only and said 'dominates')."""
    a = curve("a", [(0.5, (8.0, 2.0)), (1.0, (9.0, 1.0))])
    b = curve("b", [(0.5, (8.0, 2.0)), (1.0, (10.0, 0.5))])
    assert compare_frontiers(a, b).verdict == "crosses"
    assert compare_frontiers(b, a).verdict == "crosses"
