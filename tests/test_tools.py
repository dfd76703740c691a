"""The A/B tools run end to end (tiny sizes, one round): they are how kernel changes are judged
on a noisy host, so they must not rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ryzlab.core import native

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def lib_path() -> str:
    return str(native.library_path())


def test_ab_attention_compares_two_builds(lib_path):
    out = _run("tools/ab_attention.py", lib_path, lib_path, "--pos", "70", "--layers", "2", "--rounds", "2",
               "--threads", "2")
    assert out.count("first/this") == 2 and "MB of K and V" in out


def test_ab_libs_compares_two_builds(lib_path):
    out = _run("tools/ab_libs.py", lib_path, lib_path, "--model", "tiny", "--rounds", "2", "--pos", "3")
    assert out.count("first/this") == 2
    out = _run("tools/ab_libs.py", lib_path, lib_path, "--model", "tiny", "--rounds", "2", "--part", "head",
               "--head", "int4", "--cold")
    assert out.count("first/this") == 2 and "caches evicted" in out
