"""Loading libryzlab through cffi in ABI mode.

The library is built by ``make build`` into ``ryzlab/_lib/`` next to a copy of its public
header, which is the cffi declaration (one source of truth for the ABI).  ``RYZLAB_LIB``
points at another build (e.g. the sanitizer build).  Loading is lazy so that the pure-numpy
parts of ryzlab work without a build; the first native call raises
:class:`LibraryNotBuiltError` with the command that fixes it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from cffi import FFI

from ..errors import KernelCallError, LibraryNotBuiltError

ffi = FFI()


def library_path() -> Path:
    """Path of the shared library that will be (or was) loaded."""
    env = os.environ.get("RYZLAB_LIB")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "_lib" / "libryzlab.so"


@functools.cache
def lib():
    """The loaded library (cffi ``Lib``); loaded once per process."""
    path = library_path()
    header = path.with_name("ryzlab.h")
    if not path.is_file() or not header.is_file():
        raise LibraryNotBuiltError(
            f"the kernel library is not built: expected {path} and {header.name} beside it; "
            "run `make build` in the repository (or `make test`, which also sets up .venv)"
        )
    ffi.cdef(header.read_text())
    try:
        return ffi.dlopen(str(path))
    except OSError as exc:
        raise LibraryNotBuiltError(f"cannot load the kernel library {path}: {exc}") from exc


def check(rc: int, what: str) -> None:
    """Turn a negative return code of the library into an exception."""
    if rc < 0:
        message = ffi.string(lib().ryz_error_string(rc)).decode()
        raise KernelCallError(f"{what} failed: {message} (code {rc})")


def string(ptr) -> str:
    """A C string from the library as str."""
    return ffi.string(ptr).decode() if ptr != ffi.NULL else ""


def build_info() -> str:
    """Compiler version and flags the library was built with."""
    return string(lib().ryz_build_info())


def ptr(array: np.ndarray, ctype: str):
    """A pointer into a C-contiguous numpy array, without copying."""
    return ffi.from_buffer(f"{ctype}[]", array, require_writable=ctype == "int")
