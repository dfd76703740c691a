"""Hostile arguments against the public API, run by tests/test_fuzz.py in a child process.

Each hypothesis example calls pack, gemm, the int8 head or a tampered object with random and
hostile arguments, and requires either a Python exception that ryzlab documents (RyzlabError,
ValueError, TypeError) or the exact result.  A signal (SIGSEGV, SIGILL, SIGABRT from the
sanitizer) kills this process; the parent reports it with the last example printed here.

    python tests/fuzz_boundary.py [max_examples]
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ryzlab
from ryzlab import reference
from ryzlab.core.head import INT4_GROUPS, Int4Head, Int8Head, int4_reference

ALLOWED = (ryzlab.RyzlabError, ValueError, TypeError)
KERNELS = [k.name for k in ryzlab.registry()]

dims = st.one_of(st.integers(1, 70), st.sampled_from([0, -1, 255, 256, 257, 1 << 23, (1 << 23) + 1, 1 << 31, 1 << 62]))
threads = st.one_of(st.none(), st.integers(1, 8), st.sampled_from([0, -3, 1024, 1025, 10**7, 2**31, True, 2.5, "2"]))
kernels = st.one_of(st.none(), st.sampled_from(KERNELS + ["nope", "", 3]))
schedules = st.sampled_from(["blocks", "dynamic1", "critical", "guided", 1])
dtypes = st.sampled_from([np.int8, np.int8, np.int8, np.uint8, np.int16, np.float32, np.int64])


def _say(*what) -> None:
    print("example:", *what, flush=True)


@st.composite
def arrays(draw, rows, cols, ternary: bool):
    dtype = draw(dtypes)
    shape = (rows, cols) if draw(st.booleans()) else draw(st.sampled_from([(cols,), (rows, cols, 1), (0, cols), ()]))
    if any(d <= 0 or d > 4096 for d in shape) or np.prod(shape, dtype=np.int64) > 1 << 20:
        return np.zeros((1, 1), dtype)  # keep memory small: sizes alone are fuzzed below
    lo, hi = (-1, 2) if ternary and draw(st.booleans()) else (-128, 128)
    a = draw(st.integers(0, 2**32 - 1).map(lambda s: np.random.default_rng(s).integers(lo, hi, shape)))
    a = a.astype(dtype)
    if draw(st.integers(0, 9)) == 0 and a.ndim == 2 and a.shape[1] > 1:
        a = a[:, ::2]  # not contiguous
    return a


@given(st.data())
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def fuzz(data) -> None:
    M, K, N = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 600)), data.draw(st.integers(1, 5))
    w = data.draw(arrays(M, K, ternary=True))
    x = data.draw(arrays(N, K, ternary=False))
    kernel, t, sched = data.draw(kernels), data.draw(threads), data.draw(schedules)
    case = data.draw(st.sampled_from(["gemm", "packed", "tampered", "forged", "head", "head_tampered", "head4",
                                          "head4_tampered", "sizes"]))
    _say(case, w.shape, w.dtype, x.shape, x.dtype, kernel, t, sched)
    try:
        if case == "gemm":
            y = ryzlab.gemm(w, x, kernel=kernel, threads=t, schedule=sched)
            assert np.array_equal(y, reference.gemm(w, x)), "wrong result"
        elif case == "packed":
            p = ryzlab.pack(w, kernel)
            y = ryzlab.gemm(p, x, threads=t, schedule=sched)
            assert np.array_equal(y, reference.gemm(w, x)), "wrong result"
        elif case == "tampered":  # through dataclasses.replace: validated on construction
            p = ryzlab.pack(w, kernel)
            field = data.draw(st.sampled_from(["M", "K", "data", "kernel", "bits_per_weight"]))
            value = {"M": data.draw(dims), "K": data.draw(dims), "data": p.data[: data.draw(st.integers(0, p.nbytes))],
                     "kernel": data.draw(st.sampled_from(KERNELS)), "bits_per_weight": 1.0}[field]
            q = dataclasses.replace(p, **{field: value})
            ryzlab.gemm(q, x, threads=t)
            assert (q.M, q.K, q.kernel) == (p.M, p.K, p.kernel) or field == "kernel"
        elif case == "forged":  # fields overwritten behind validation's back: C must refuse
            p = ryzlab.pack(w, kernel)
            field = data.draw(st.sampled_from(["M", "K", "data"]))
            value = {"M": data.draw(dims), "K": data.draw(dims),
                     "data": p.data[: data.draw(st.integers(0, p.nbytes))]}[field]
            object.__setattr__(p, field, value)
            y = ryzlab.gemm(p, x, threads=t)
            assert field == "data" and len(value) == p.nbytes or np.array_equal(y, reference.gemm(w, x))
        elif case == "head":
            h = Int8Head.from_int8(w, np.ones(w.shape[0] if w.ndim else 1, np.float32))
            y = h.gemv_int(x, threads=t if t is not None else 1)
            assert np.array_equal(y, w.astype(np.int64) @ x.astype(np.int64).reshape(-1)), "wrong head result"
        elif case == "head_tampered":
            h = Int8Head.from_int8(w, np.ones(w.shape[0] if w.ndim else 1, np.float32))
            field = data.draw(st.sampled_from(["M", "K", "data"]))
            value = {"M": data.draw(dims), "K": data.draw(dims), "data": h.data[: data.draw(st.integers(0, h.data.nbytes))]}[field]
            if data.draw(st.booleans()):
                h = dataclasses.replace(h, **{field: value})
            else:
                object.__setattr__(h, field, value)
            h.gemv_int(x, threads=1)
            assert field == "data" and len(value) == h.data.nbytes
        elif case in ("head4", "head4_tampered"):  # int4 weights: ternary draws are in range, int8 ones not
            G = data.draw(st.sampled_from([*INT4_GROUPS, 16]))
            ng = -(-w.shape[-1] // G) if w.ndim == 2 else 1
            s = np.full((w.shape[0] if w.ndim else 1, ng), 0.5, np.float16)
            h = Int4Head.from_int4(w, s, G)
            if case == "head4":
                y = h.gemv(x, threads=t if t is not None else 1)
                assert np.array_equal(y, int4_reference(w, s, x.reshape(-1), G)), "wrong int4 head result"
            else:
                field = data.draw(st.sampled_from(["M", "K", "group", "data"]))
                value = {"M": data.draw(dims), "K": data.draw(dims), "group": data.draw(st.sampled_from([16, 32, 64, 0])),
                         "data": h.data[: data.draw(st.integers(0, h.data.nbytes))]}[field]
                if data.draw(st.booleans()):
                    h = dataclasses.replace(h, **{field: value})
                else:
                    object.__setattr__(h, field, value)
                h.gemv(x, threads=1)
                assert (field == "data" and len(value) == h.data.nbytes or field != "data" and getattr(h, field) ==
                        {"M": w.shape[0], "K": w.shape[-1], "group": G}[field]), "tampered int4 head ran"
        else:  # sizes alone, without the memory they describe
            kk = data.draw(dims)
            big = np.broadcast_to(np.int8(1), (1, kk)) if 0 < kk <= 1 << 26 else np.zeros((1, 1), np.int8)
            ryzlab.gemm(big, big, threads=t)
    except ALLOWED:
        pass
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        raise AssertionError(f"undocumented exception {type(exc).__name__}: {exc}") from exc


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    settings.register_profile("run", max_examples=n)
    settings.load_profile("run")
    fuzz()
    print(f"fuzzed {n} examples: every call raised a documented exception or was exact", flush=True)
