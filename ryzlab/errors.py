"""Exceptions raised by ryzlab.  Every one says what was expected."""


class RyzlabError(Exception):
    """Base class of ryzlab's own errors."""


class LibraryNotBuiltError(RyzlabError, ImportError):
    """The kernel library (libryzlab.so) is missing or cannot be loaded."""


class UnsupportedKernelError(RyzlabError, ValueError):
    """The kernel does not exist, or this CPU cannot run it."""


class KernelCallError(RyzlabError, RuntimeError):
    """The C library rejected a call (a ryzlab bug if validation let it through)."""
