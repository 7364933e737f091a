"""The numbers behind promotion and triage: the paired comparison of two models on the same held-out photos
(difference, its standard error, McNemar's exact p), the promotion rule, and the triage thresholds chosen
so that the answers above them are right 98% of the time."""
from __future__ import annotations

import math

import numpy as np

from shoefind.registry.calibrate import MARGIN_FLOOR, MIN_SUPPORT, choose_thresholds, margins, wilson_lower
from shoefind.registry.compare import mcnemar_p, paired, should_promote


def test_paired_difference_counts_only_the_discordant_photos():
    old = {f"p{i}": i < 80 for i in range(100)}                  # 80 right
    new = dict(old) | {f"p{i}": True for i in range(80, 90)} | {"p0": False, "p1": False}
    c = paired(new, old)
    assert (c.photos, c.new_only, c.old_only) == (100, 10, 2)
    assert (c.new_top1, c.old_top1, c.difference) == (0.88, 0.8, 0.08)
    assert math.isclose(c.se, math.sqrt(12 - 64 / 100) / 100, rel_tol=1e-3)
    assert math.isclose(c.p_value, 0.0386, abs_tol=1e-4)         # binomial(12, 1/2): P(<= 2) * 2
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    # photos only one model answered are left out of the comparison
    assert paired(new | {"extra": True}, old).photos == 100


def test_a_model_is_promoted_when_not_worse():
    old = {f"p{i}": i < 50 for i in range(60)}
    assert should_promote(None)[0]
    assert should_promote(paired(dict(old), old))[0]                       # a tie: more data, same score
    worse = dict(old) | {"p0": False}
    promote, why = should_promote(paired(worse, old))
    assert not promote and "worse" in why and "SE" in why and "McNemar" in why


def test_thresholds_keep_the_answers_above_them_right_98_percent_of_the_time():
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.integers(0, 4, n)
    sure = rng.uniform(0.0, 1.0, n)                     # how sure the model is
    right = rng.uniform(0, 1, n) < 0.55 + 0.45 * sure   # surer answers are right more often
    top = np.where(right, truth, (truth + 1) % 4)
    probs = np.full((n, 4), 0.0)
    probs[np.arange(n), top] = 0.5 + 0.5 * sure
    probs[np.arange(n), (top + 2) % 4] = 0.5 - 0.5 * sure
    t = choose_thresholds(probs, truth, np.ones(n), target=0.98)
    m = margins(probs)
    above = m >= t.margin
    assert (probs.argmax(1)[above] == truth[above]).mean() >= 0.98
    assert t.calibration["above"] == above.sum() >= MIN_SUPPORT and t.margin >= MARGIN_FLOOR
    # a lower threshold would have let the precision fall under the target
    lower = m >= np.sort(m[m < t.margin])[-1]
    assert (probs.argmax(1)[lower] == truth[lower]).mean() < 0.98 or lower.sum() == above.sum()
    assert t.calibration["precision_lower"] == round(wilson_lower(int((probs.argmax(1)[above] == truth[above]).sum()),
                                                                   int(above.sum())), 4)


def test_no_threshold_when_too_few_or_too_wrong():
    probs = np.array([[0.9, 0.1]] * 5)
    assert choose_thresholds(probs, np.zeros(5, int), np.ones(5)).margin is None          # 5 < MIN_SUPPORT
    wrong = np.array([[0.9, 0.1]] * 30)
    t = choose_thresholds(wrong, np.array([0] * 25 + [1] * 5), np.ones(30))
    assert t.margin is None and "no automatic decisions" in t.describe()
    # the novelty threshold is the catalog's own photos' lowest percentile
    sims = np.linspace(0.5, 1.0, 101)
    assert math.isclose(choose_thresholds(wrong[:1].repeat(101, 0), np.zeros(101, int), sims).novelty, 0.505)
