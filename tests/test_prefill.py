"""Model.prefill against token-by-token decode (Model.step) of the same prompt.

Prefill runs the same per-row float functions and the same attention code as decode, and its
GEMMs give the same exact int32 results as the GEMVs, so the logits should be bit-identical;
the test allows the model tests' tolerance (1e-4 of max|logit|) and demands identical greedy
tokens after prefill and after step-by-step decode."""

from __future__ import annotations

import numpy as np
import pytest

import ryzlab
from ryzlab.errors import RyzlabError
from ryzlab.model import CONFIGS, Model

RTOL = 1e-4
PROMPT = [7, 3, 999, 5, 12, 800, 1, 2, 3, 41, 0, 77, 500]


def _close(a, b):
    return np.abs(a - b).max() <= RTOL * np.abs(b).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel", ryzlab.kernels())
def test_prefill_equals_step_by_step(kernel, threads):
    stepped = Model.generate("tiny", seed=3, kernel=kernel, max_context=64)
    want = np.stack([stepped.step(t, threads) for t in PROMPT])
    pre = Model.generate("tiny", seed=3, kernel=kernel, max_context=64)
    last = pre.prefill(PROMPT, threads)
    assert last.dtype == np.float32 and last.shape == (CONFIGS["tiny"].vocab,)
    assert pre.pos == len(PROMPT) and _close(last, want[-1])
    tok = int(np.argmax(last))
    assert pre.generate_tokens([tok], 8, threads) == stepped.generate_tokens([tok], 8, threads)

    every = Model.generate("tiny", seed=3, kernel=kernel, max_context=64)
    got = every.prefill(PROMPT, threads, return_all=True)
    assert got.shape == (len(PROMPT), CONFIGS["tiny"].vocab)
    for i in range(len(PROMPT)):
        assert _close(got[i], want[i]), f"position {i}"


def test_prefill_from_a_position_and_in_pieces():
    """Prefill after some decode steps, and a prompt in two prefills, equal step-by-step."""
    stepped = Model.generate("tiny", seed=4, max_context=32)
    want = [stepped.step(t, 2) for t in PROMPT]
    m = Model.generate("tiny", seed=4, max_context=32)
    for t in PROMPT[:3]:
        m.step(t, 2)
    assert _close(m.prefill(PROMPT[3:8], 2), want[7])
    assert _close(m.prefill(np.array(PROMPT[8:]), 1), want[-1])  # a new T: new GEMMs
    assert m.pos == len(PROMPT)
    np.testing.assert_array_equal(m.k_cache[:, :, :len(PROMPT)], stepped.k_cache[:, :, :len(PROMPT)])
    np.testing.assert_array_equal(m.v_cache[:, :, :len(PROMPT)], stepped.v_cache[:, :, :len(PROMPT)])
    assert set(m.prefill_timings) == {"ternary_gemm", "attention", "lm_head", "other"}
    assert m.prefill_timings["ternary_gemm"] > 0


def test_prefill_matches_float_reference_and_f32_head():
    ref = Model.reference("tiny", seed=5, max_context=16)
    want = [ref.step(t) for t in PROMPT[:6]]
    m = Model.generate("tiny", seed=5, max_context=16, head="f32")
    f32 = Model.generate("tiny", seed=5, max_context=16, head="f32")
    got = m.prefill(PROMPT[:6], 1, return_all=True)
    stepped = np.stack([f32.step(t) for t in PROMPT[:6]])
    assert _close(got, stepped)
    i8 = Model.generate("tiny", seed=5, max_context=16).prefill(PROMPT[:6], 1, return_all=True)
    for i in range(6):
        assert _close(i8[i], want[i])


def test_prefill_refuses_bad_prompts():
    m = Model.generate("tiny", seed=0, max_context=4)
    with pytest.raises(RyzlabError, match="max_context"):
        m.prefill([1] * 5)
    for bad in ([], None, "12"):
        with pytest.raises(ValueError, match="token_ids"):
            m.prefill(bad)
    with pytest.raises(ValueError, match="token"):
        m.prefill([1, CONFIGS["tiny"].vocab])
    with pytest.raises(TypeError, match="token"):
        m.prefill([1.5])
    with pytest.raises(ValueError, match="threads"):
        m.prefill([1], threads=0)
    assert m.pos == 0
