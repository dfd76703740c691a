import math

import pytest

from ryzlab.measure.stats import UNSTABLE_SPREAD, summarize


def test_known_samples():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["n_samples"] == 5
    assert (s["min_s"], s["q1_s"], s["median_s"], s["q3_s"], s["max_s"]) == (1, 2, 3, 4, 5)
    assert s["iqr_s"] == 2.0
    assert math.isclose(s["spread"], 2 / 3)
    assert s["unstable"] is True


def test_single_sample_is_stable():
    s = summarize([0.25])
    assert s["median_s"] == s["min_s"] == s["max_s"] == 0.25
    assert s["iqr_s"] == 0.0 and s["unstable"] is False


@pytest.mark.parametrize(("iqr", "unstable"), [(1.0, False), (1.25, True), (0.5, False)])
def test_unstable_threshold(iqr, unstable):
    # Quartiles of [lo]*3 + [median] + [hi]*3 are exactly lo and hi; median 10 and these
    # IQRs are exact in binary, so spread lands exactly on (or clear of) the threshold.
    median = 10.0
    lo, hi = median - iqr / 2, median + iqr / 2
    s = summarize([lo, lo, lo, median, hi, hi, hi])
    assert (s["q1_s"], s["median_s"], s["q3_s"]) == (lo, median, hi)
    assert s["spread"] == iqr / median
    assert s["unstable"] is unstable
    assert UNSTABLE_SPREAD == 0.10


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [-1e-3], [float("nan")], [float("inf")]])
def test_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_spread_is_iqr_over_median():
    from ryzlab.measure.stats import spread

    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == summarize([1.0, 2.0, 3.0, 4.0, 5.0])["spread"] == 2 / 3
    assert spread([4.0]) == 0.0
