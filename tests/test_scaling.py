import numpy as np
import pytest

from ryzlab.measure.scaling import amdahl_speedup, fit_serial_fraction


@pytest.mark.parametrize("s", [0.0, 0.03, 0.2, 1.0])
def test_fit_recovers_the_serial_fraction(s):
    t = np.array([1, 2, 4, 8, 16])
    assert fit_serial_fraction(t, amdahl_speedup(t, s)) == pytest.approx(s, abs=1e-12)


def test_fit_is_clipped_and_checked():
    assert fit_serial_fraction([2, 4], [2.5, 5.0]) == 0.0  # superlinear: no serial part
    with pytest.raises(ValueError):
        fit_serial_fraction([1, 1], [1.0, 1.0])
    with pytest.raises(ValueError):
        fit_serial_fraction([2], [0.0])
