"""The statistics the promotion gate reads, against scipy and hand-computed cases."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from corpus_platform.evaluation.overlap import lcs_length, rouge_l, token_f1
from corpus_platform.evaluation.stats import LOSS, TIE, WIN, bootstrap_ci, cohens_d, compare, mann_whitney, paired_outcomes


def test_mann_whitney_matches_scipy_and_the_exact_small_case():
    # No overlap, 3 vs 3: U = 0 and the exact two-sided p is 2 / C(6, 3) = 0.1.
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == {"u": 0.0, "p_value": pytest.approx(0.1)}
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 40), rng.normal(0.8, 1, 35)
    ours, ref = mann_whitney(a, b), mannwhitneyu(a, b, alternative="two-sided")
    assert ours["u"] == pytest.approx(ref.statistic) and ours["p_value"] == pytest.approx(ref.pvalue)
    assert ours["p_value"] < 0.05


def test_cohens_d_by_hand():
    # a: mean 4, sample var 4; b: mean 2, sample var 1; pooled SD = sqrt((2*4 + 2*1) / 4) = sqrt(2.5).
    assert cohens_d([2, 4, 6], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2.5))
    assert cohens_d([1, 2, 3], [2, 4, 6]) == pytest.approx(-2 / math.sqrt(2.5))
    assert cohens_d([5, 5], [5, 5]) == 0.0
    assert cohens_d([6, 6], [5, 5]) == math.inf  # a difference with no noise at all


def test_bootstrap_ci_contains_the_true_rate_and_is_deterministic():
    true_rate, n = 0.7, 400
    outcomes = (np.random.default_rng(7).random(n) < true_rate).astype(float)
    lo, hi = bootstrap_ci(outcomes, seed=3)
    assert lo < true_rate < hi
    p = outcomes.mean()  # the normal approximation gives nearly the same interval for this n
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert lo == pytest.approx(p - half, abs=0.01) and hi == pytest.approx(p + half, abs=0.01)
    assert bootstrap_ci(outcomes, seed=3) == (lo, hi)
    assert bootstrap_ci(outcomes, seed=4) != (lo, hi)
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_compare_orients_d_and_wins_toward_the_adapter():
    base = [3.0, 3.2, 2.9, 3.1, 3.3, 3.0, 2.8, 3.4]
    adapter = [b - 1.0 for b in base[:-1]] + [base[-1] + 0.5]  # lower NLL on all but the last
    result = compare(base, adapter, higher_is_better=False, n_resamples=2000, seed=0)
    assert (result["wins"], result["losses"], result["ties"], result["n"]) == (7, 1, 0, 8)
    assert result["win_rate"] == pytest.approx(7 / 8)
    assert result["cohens_d"] > 0 and result["cohens_d"] == pytest.approx(cohens_d(base, adapter))
    assert result["p_value"] == pytest.approx(mannwhitneyu(adapter, base, alternative="two-sided").pvalue)
    assert result["win_rate_ci"][0] <= 7 / 8 <= result["win_rate_ci"][1]
    flipped = compare(adapter, base, higher_is_better=False, n_resamples=2000)
    assert flipped["cohens_d"] == pytest.approx(-result["cohens_d"])
    assert paired_outcomes([1, 1, 1], [2, 1, 0], higher_is_better=True) == [WIN, TIE, LOSS]


def test_reference_overlap_by_hand():
    assert token_f1("Paris is the capital", "the capital is Paris!") == 1.0
    assert token_f1("the cat", "the dog") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert lcs_length("a b c d e".split(), "a c e f".split()) == 3
    # LCS "the cat on the mat" = 5 of 6 tokens on each side.
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("completely different", "nothing shared") == 0.0
