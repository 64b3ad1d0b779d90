"""``fit(..., compile=True)`` on JAX: see :mod:`xpnet.training.compiled` (re-exported)."""

from .training.compiled import (
    CACHE_SIZE,
    COMPILE_BACKENDS,
    PROGRAMS,
    cached_programs,
    check_compile,
    chunk_epochs,
    chunk_program,
    epoch_program,
)

_programs = PROGRAMS  # the names the tests and earlier code used
_CACHE_SIZE = CACHE_SIZE

__all__ = ["CACHE_SIZE", "COMPILE_BACKENDS", "PROGRAMS", "cached_programs", "check_compile",
           "chunk_epochs", "chunk_program", "epoch_program"]
