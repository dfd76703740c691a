"""What the compiler made of the kernels: properties of the object code that no output check sees.

GCC 12 once deleted every software prefetch of head_i4_avx512vnni.c (the intrinsic was judged
a const call with an unused result), and the only symptom was that head streaming DRAM at two
thirds of the read probe. Results were exact, so no exactness test could notice."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "kernels_c").glob("*.c"))
OBJDIR = ROOT / "build" / "obj"  # the Makefile's default OBJDIR, built by `make test`
PREFETCH_CALL = re.compile(r"\b(ryz_prefetch|ryz_prefetch_ahead|_mm_prefetch|__builtin_prefetch)\s*\(")


def _prefetching_sources() -> list[Path]:
    return [s for s in SOURCES if PREFETCH_CALL.search(s.read_text())]


def test_some_sources_prefetch():
    assert len(_prefetching_sources()) >= 10  # the pattern still matches how the kernels prefetch


@pytest.mark.parametrize("source", _prefetching_sources(), ids=lambda s: s.name)
def test_every_prefetch_source_keeps_a_prefetch_instruction(source):
    objdump = shutil.which("objdump")
    obj = OBJDIR / f"{source.stem}.o"
    if not objdump or not obj.exists():
        pytest.skip("needs objdump and the objects of `make build` in build/obj")
    if obj.stat().st_mtime < source.stat().st_mtime:
        pytest.skip(f"{obj.name} is older than its source: run `make build`")
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(obj)], check=True,
                             capture_output=True, text=True).stdout
    assert re.search(r"\bprefetch(t0|t1|t2|nta|w)\b", listing), f"{obj.name} has no prefetch instruction"
