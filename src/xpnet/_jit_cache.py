"""JAX's persistent compilation cache, turned on for xpnet's programs.

A compiled fit (``fit(compile=True)`` on JAX) and the small programs every JAX
computation compiles (one per operation and shape) depend only on shapes, dtypes and
settings, never on the data's values: xpnet passes the data, the weights, the learning
rate and the permutations as arguments. So they are compiled once per machine, not once
per process: the first time xpnet builds a JAX backend it points JAX's own cache
(``jax_compilation_cache_dir``) at a folder and lowers its thresholds so that every
program is kept, however fast it compiled (a tiny fit's 1.4 s first fit is mostly
dozens of small programs of a few milliseconds each).

- **Where**: ``$XPNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/xpnet/jax``, else
  ``~/.cache/xpnet/jax``. ``XPNET_CACHE_DIR=off`` turns it off, as do
  :func:`set_compile_cache` ``(False)`` and ``xpnet train --no-cache``; ``xpnet
  backends`` says where it is and how large.
- **A cap**: JAX evicts the least recently used entries beyond :data:`MAX_BYTES` (it
  needs the ``filelock`` package for that, which the ``jax`` extra installs; without it
  the cache has no cap).
- **The user's own setting wins**: where ``jax_compilation_cache_dir`` is already set
  (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.update``), xpnet changes nothing.
- **Safety**: the key of an entry covers the program, the JAX and XLA versions, the
  device and the compiler flags, so an entry is only ever used for the program that
  made it. JAX writes entries under a file lock (not by renaming), so a crash mid-write
  can leave a truncated entry; an entry it cannot read (truncated, corrupt) is reported
  by JAX with a warning and compiled afresh on every use: a recompile, never a wrong
  result (removing the folder clears it). The switch is
  process-wide: JAX programs of other code compiled later in the process are cached
  there too (a program that closes over an array keeps that array in its entry).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["ENV", "MAX_BYTES", "cache_directory", "configure_jax", "describe",
           "set_compile_cache"]

#: The environment variable that moves the cache (``off``: no cache).
ENV = "XPNET_CACHE_DIR"
#: Most bytes of cache entries; JAX removes the least recently used beyond it.
MAX_BYTES = 512 << 20
_OFF = ("off", "none", "0", "false", "no")

# What set_compile_cache chose: a folder, False (off), or None (the default rule).
_choice: dict[str, Any] = {"directory": None}


def cache_directory() -> Path | None:
    """The folder xpnet points JAX's cache at, or ``None`` when the cache is off."""
    chosen = _choice["directory"]
    if chosen is False:
        return None
    if chosen is not None:
        return Path(chosen)
    value = os.environ.get(ENV)
    if value is not None and value.strip():
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xpnet" / "jax"


def set_compile_cache(directory: str | os.PathLike[str] | bool | None = None) -> Path | None:
    """Choose where compiled JAX programs are kept across processes.

    Parameters
    ----------
    directory : str, os.PathLike, bool or None
        A folder; ``None`` or ``True`` for the default (``$XPNET_CACHE_DIR``, else
        ``$XDG_CACHE_HOME/xpnet/jax``, else ``~/.cache/xpnet/jax``); ``False`` to keep
        nothing on disk.

    Returns
    -------
    pathlib.Path or None
        The folder in use from now on (``None``: off).

    Notes
    -----
    Call it before the first JAX network is built: JAX reads the folder when it first
    uses its cache, once per process; turning the cache off works at any time.
    """
    if directory is not None and not isinstance(directory, bool | str | os.PathLike):
        raise TypeError(f"directory must be a path, True, False or None; got {directory!r}")
    _choice["directory"] = None if directory is None or directory is True else (
        False if directory is False else os.fspath(directory))
    import sys

    if "jax" in sys.modules:
        configure_jax(sys.modules["jax"])
    return cache_directory()


def configure_jax(jax: Any) -> None:
    """Point JAX's persistent cache at :func:`cache_directory` (see the module docs);
    called whenever xpnet builds a JAX backend, cheap after the first time."""
    config = jax.config
    current = getattr(config, "jax_compilation_cache_dir", None)
    ours = _choice.get("configured")
    if current is not None and current != ours:
        return  # the user's own cache folder: theirs to manage
    directory = cache_directory()
    if directory is None:
        if ours is not None:
            config.update("jax_enable_compilation_cache", False)
        return
    if ours == str(directory):
        return
    config.update("jax_compilation_cache_dir", str(directory))
    config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        import filelock  # noqa: F401  # JAX's eviction needs it
    except ImportError:
        pass
    else:
        config.update("jax_compilation_cache_max_size", MAX_BYTES)
    config.update("jax_enable_compilation_cache", True)
    _choice["configured"] = str(directory)


def describe() -> str:
    """One line for ``xpnet backends``: where compiled JAX programs are kept."""
    directory = cache_directory()
    if directory is None:
        return f"compile cache  off ({ENV}=off or set_compile_cache(False))"
    files = [p for p in directory.glob("*") if p.is_file()] if directory.is_dir() else []
    size = sum(p.stat().st_size for p in files)
    return (f"compile cache  {directory} (JAX programs: {len(files)} files, "
            f"{size / 2**20:.1f} MiB of at most {MAX_BYTES >> 20} MiB; {ENV} moves it, "
            f"{ENV}=off turns it off)")
