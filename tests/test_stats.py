"""reflectevo_tasks.stats against values computed independently with scipy."""

import math

import pytest

from reflectevo_tasks import stats

scipy_stats = pytest.importorskip("scipy.stats")

# (b, c, n): b items right only in the first score, c only in the second, n items in all
CASES = [
    (0, 0, 540),  # nothing discordant
    (0, 0, 10),
    (1, 0, 540),  # one discordant item
    (0, 1, 20),
    (4, 0, 540),  # the review's case: 4 fixes, no breaks
    (5, 0, 40),
    (6, 0, 540),  # the fewest one-sided items that can reach p < 0.05
    (30, 14, 540),
    (14, 16, 540),
    (10, 35, 540),
    (7, 3, 10),  # every item discordant
    (0, 12, 12),
    (3, 1, 20),
    (120, 80, 5000),  # large n
    (260, 300, 2000),
]


def _scipy_p(b, c):
    return 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue


def _scipy_cp(k, n, alpha=0.05):
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else scipy_stats.beta.ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else scipy_stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    return lo, hi


@pytest.mark.parametrize("b, c, n", CASES)
def test_exact_mcnemar_p_value_matches_scipy(b, c, n):
    p = stats.mcnemar_exact(b, c)
    assert p == pytest.approx(_scipy_p(b, c), rel=1e-12, abs=1e-15)
    # the definition: doubled smaller tail of Bin(b + c, 1/2), capped at 1
    if b + c:
        assert p == pytest.approx(min(1.0, 2 * scipy_stats.binom.cdf(min(b, c), b + c, 0.5)), rel=1e-10)


def test_four_fixes_and_no_breaks_are_within_noise():
    """The review's case: a normal (Wald) interval called 4 against 0 a difference; the exact test does not."""
    d = stats.paired_difference(4, 0, 540)
    assert d.p_value == 0.125 and d.within_noise
    assert d.ci[0] < 0 < d.ci[1]
    assert d.difference == pytest.approx(4 / 540)


@pytest.mark.parametrize("k, n", [(0, 10), (1, 10), (5, 10), (10, 10), (4, 4), (0, 540), (44, 540), (3, 5000)])
def test_clopper_pearson_matches_scipy(k, n):
    lo, hi = stats.clopper_pearson(k, n)
    ref = _scipy_cp(k, n)
    assert lo == pytest.approx(ref[0], rel=1e-9, abs=1e-12) and hi == pytest.approx(ref[1], rel=1e-9, abs=1e-12)
    # and scipy's own exact interval for the same count
    if n:
        ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("b, c, n", CASES)
def test_paired_interval_matches_its_definition_with_scipy_quantiles(b, c, n):
    """psi * (2 theta - 1) over theta in the exact interval of b of b + c and psi in that of b + c of n."""
    d = stats.paired_difference(b, c, n)
    t_lo, t_hi = _scipy_cp(b, b + c)
    s_lo, s_hi = _scipy_cp(b + c, n)
    corners = [s * (2 * t - 1) for s in (s_lo, s_hi) for t in (t_lo, t_hi)]
    assert d.ci == pytest.approx((min(corners), max(corners)), rel=1e-8, abs=1e-12)
    assert d.ci[0] <= d.difference <= d.ci[1]
    assert d.p_value == pytest.approx(_scipy_p(b, c), rel=1e-12)


@pytest.mark.parametrize("b, c, n", CASES)
def test_interval_leaves_out_zero_exactly_when_the_test_rejects(b, c, n):
    d = stats.paired_difference(b, c, n)
    assert (d.ci[0] <= 0 <= d.ci[1]) == (d.p_value >= 0.05) == d.within_noise


def test_interval_agrees_with_the_test_for_every_split_of_small_counts():
    for n in (6, 25):
        for b in range(n + 1):
            for c in range(n + 1 - b):
                d = stats.paired_difference(b, c, n)
                assert (d.ci[0] <= 0 <= d.ci[1]) == (_scipy_p(b, c) >= 0.05), (b, c, n)


@pytest.mark.parametrize("n", [10, 540])
def test_no_discordant_items_is_not_a_point(n):
    """0 of n discordant: the interval is +- the exact upper bound of the discordance rate, 1 - 0.025^(1/n)."""
    d = stats.paired_difference(0, 0, n)
    bound = 1 - 0.025 ** (1 / n)
    assert d.ci == pytest.approx((-bound, bound), rel=1e-9) and d.p_value == 1.0
    assert bound == pytest.approx(scipy_stats.beta.ppf(0.975, 1, n), rel=1e-9)


def test_all_discordant_one_way():
    d = stats.paired_difference(12, 0, 12)
    assert d.difference == 1.0 and d.p_value == pytest.approx(2 * 0.5 ** 12)
    # both exact lower bounds (of the split, 12 of 12, and of the discordance, 12 of 12) are 0.025^(1/12)
    q = 0.025 ** (1 / 12)
    assert d.ci[1] == pytest.approx(1.0) and d.ci[0] == pytest.approx(q * (2 * q - 1), rel=1e-9)


@pytest.mark.parametrize("bad", [(-1, 0, 5), (3, 3, 5), (0, 0, 0)])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError):
        stats.paired_difference(*bad)


def _scipy_power(m, theta, alpha=0.05):
    """Power of the exact test from scipy: every split whose binomtest p-value is below alpha."""
    region = [b for b in range(m + 1) if _scipy_p(b, m - b) < alpha]
    return float(sum(scipy_stats.binom.pmf(region, m, theta))) if region else 0.0


@pytest.mark.parametrize("m, theta", [(5, 1.0), (6, 1.0), (6, 0.9), (20, 0.7), (44, 0.68), (100, 0.6), (301, 0.55)])
def test_power_of_the_exact_test_matches_scipy(m, theta):
    assert stats.sign_test_power(m, theta) == pytest.approx(_scipy_power(m, theta), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("n, discordant", [(540, 44), (540, 10), (100, 30), (20, 6)])
def test_minimum_detectable_difference_reaches_the_power(n, discordant):
    d = stats.min_detectable_difference(n, discordant)
    theta = (1 + d * n / discordant) / 2
    assert _scipy_power(discordant, theta) == pytest.approx(0.8, abs=1e-6)
    assert _scipy_power(discordant, theta - 0.01) < 0.8


def test_too_few_discordant_items_can_detect_nothing():
    assert stats.min_detectable_difference(540, 5) is None and stats.min_detectable_difference(540, 0) is None


def test_items_needed():
    # 3 points when 8% of items differ: theta = (1 + 0.03/0.08) / 2 = 0.6875
    need = stats.items_needed(0.03, 0.08)
    m = stats.discordant_needed(0.6875)
    assert need == math.ceil(m / 0.08)
    assert _scipy_power(m, 0.6875) >= 0.8 > _scipy_power(m - 1, 0.6875)
    with pytest.raises(ValueError):
        stats.items_needed(0.1, 0.05)  # a difference larger than the discordance


def test_items_needed_beyond_exact_sums_is_the_normal_approximation():
    """0.1 points when half the items differ: theta = 0.501, millions of discordant items."""
    theta = 0.501
    z_a, z_b = scipy_stats.norm.ppf(0.975), scipy_stats.norm.ppf(0.8)
    m = math.ceil(((z_a * 0.5 + z_b * math.sqrt(theta * (1 - theta))) / (theta - 0.5)) ** 2)
    assert stats.discordant_needed(theta) == m and stats.items_needed(0.001, 0.5) == math.ceil(m / 0.5)


def test_wilson_interval_kept_for_single_proportions():
    lo, hi = stats.wilson_interval(108, 540)
    # scipy's Wilson interval for the same count
    ci = scipy_stats.binomtest(108, 540).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-5)
