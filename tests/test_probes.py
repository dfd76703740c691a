"""The read-bandwidth probe: every method runs and sums the buffer; bad calls are refused."""

import numpy as np
import pytest

from ryzlab.core import native as _native
from ryzlab.measure.harness import READ_METHODS, ReadBench, aligned_bytes


@pytest.mark.parametrize("method", READ_METHODS)
def test_each_method_reads_the_whole_buffer(method):
    lib, ffi = _native.lib(), _native.ffi
    buf = aligned_bytes(64 * 1000 + 64 * 3)  # not a multiple of 4 streams x threads
    buf[:] = np.arange(buf.size, dtype=np.uint64).astype(np.uint8)
    expect = int(buf.view(np.uint64).sum(dtype=np.uint64))
    code = {"plain": lib.RYZ_READ_PLAIN, "prefetch": lib.RYZ_READ_PREFETCH, "streams": lib.RYZ_READ_STREAMS}[method]
    for threads in (1, 2, 3):
        seconds, checksum = ffi.new("double *"), ffi.new("unsigned long long *")
        rc = lib.ryz_read_bandwidth(_native.ptr(buf, "unsigned char"), buf.nbytes, threads, code, 2, seconds, checksum)
        assert rc == 0 and seconds[0] > 0
        assert checksum[0] == (2 * expect) % 2**64


def test_read_bench_keeps_a_method_and_reports_it():
    r = ReadBench(threads=1, nbytes=1 << 20, min_sample_s=0.001, trials=1)
    assert r.method in READ_METHODS and r.row["read_method"] == r.method
    assert set(r.trial_gbps) == set(READ_METHODS)
    assert r.summary([r.sample() for _ in range(3)])["gbps"] > 0
    assert ReadBench(threads=1, nbytes=1 << 20, min_sample_s=0.001, method="plain").method == "plain"
    with pytest.raises(ValueError, match="method"):
        ReadBench(threads=1, nbytes=1 << 20, method="magic")


def test_probe_refuses_bad_calls():
    lib, ffi = _native.lib(), _native.ffi
    buf = aligned_bytes(4096 + 64)
    seconds, checksum = ffi.new("double *"), ffi.new("unsigned long long *")
    p = _native.ptr(buf, "unsigned char")
    assert lib.ryz_read_bandwidth(p, 4096, 1, 7, 1, seconds, checksum) == lib.RYZ_EARG
    assert lib.ryz_read_bandwidth(p + 1, 4096, 1, 0, 1, seconds, checksum) == lib.RYZ_EARG  # unaligned
    assert lib.ryz_read_bandwidth(p, 4096, 10**6, 0, 1, seconds, checksum) == lib.RYZ_ELIMIT


def test_working_set_probe_reads_whole_lines_for_every_thread():
    """decode's and bench-model's probe: a buffer of one token's bytes, rounded up to lines,
    at least one line per thread."""
    assert ReadBench.for_working_set(2, 1000.5).nbytes == 1024
    assert ReadBench.for_working_set(3, 10).nbytes == 3 * 64
    assert ReadBench.for_working_set(1, 1 << 20).summary([0.001])["bytes"] == 1 << 20
