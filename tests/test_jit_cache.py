"""JAX's persistent compilation cache for xpnet's programs (:mod:`xpnet._jit_cache`):
each case runs fresh Python processes, as a user's successive runs would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="the compilation cache is JAX's (the jax extra)")

# One compiled fit; prints the cache's hit/miss counts (JAX's own monitoring events),
# the weights' bytes as hex, and the warnings JAX gave.
FIT = r"""
import collections, json, sys, warnings
import jax.monitoring
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **kw: events.update([name]))
import numpy as np, xpnet
from xpnet.data import make_moons
X, y = make_moons(300, noise=0.1, seed=int(sys.argv[1]))
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    net = xpnet.MLP([2, 4, 1], backend="jax", dtype="float64", seed=0)
    if len(sys.argv) > 2:  # one compiled epoch per call, shuffled mini-batches
        net.fit(X, y, epochs=3, lr=1.0, batch_size=32, compile=True,
                callback=lambda epoch, loss: None)
    else:
        net.fit(X, y, epochs=20, lr=1.0, compile=True)
weights = b"".join(np.asarray(xpnet.to_numpy(p)).tobytes() for p in net.flat_params)
print(json.dumps({"hits": events["/jax/compilation_cache/cache_hits"],
                  "misses": events["/jax/compilation_cache/cache_misses"],
                  "weights": weights.hex(),
                  "warnings": [str(w.message) for w in seen]}))
"""


def _fit(seed: int, env: dict[str, str], *mode: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("XPNET_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")}
    proc = subprocess.run([sys.executable, "-c", FIT, str(seed), *mode], env={**base, **env},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*-cache") if p.is_file())


def test_a_second_process_compiles_nothing_and_gets_the_same_weights(tmp_path):
    env = {"XPNET_CACHE_DIR": str(tmp_path / "cache")}
    first = _fit(0, env)
    assert first["misses"] > 0 and first["hits"] == 0
    # few programs per fit, each a cost of every fresh process: the data are checked on
    # the host and moved without device programs, as are the network and the optimiser's
    # scalars; what is left is the training (one chunk program) and the finished model's
    # check (one program): 48 programs before, 2 now, ~46 one-operation casts, copies,
    # checks and array-api-compat's namespace probe
    assert first["misses"] <= 3, first["misses"]
    assert _entries(tmp_path / "cache")
    # one epoch per call (a callback), shuffled: the epoch program, the finished model's
    # check, and nothing else (the epoch's rollback start and permutations need no
    # device program: 10 programs before)
    per_epoch = _fit(0, {"XPNET_CACHE_DIR": str(tmp_path / "other")}, "per-epoch")
    assert per_epoch["misses"] <= 3, per_epoch["misses"]
    # other data of the same shape: the programs take the data as arguments, so every
    # one is found (none depends on, or holds, the values)
    second = _fit(1, env)
    assert second["misses"] == 0 and second["hits"] == first["misses"], second
    assert _fit(0, env)["weights"] == first["weights"]  # a loaded program, same numbers
    uncached = _fit(0, {"XPNET_CACHE_DIR": "off"})
    assert uncached["weights"] == first["weights"]


def test_a_truncated_or_foreign_entry_costs_a_recompile_not_a_wrong_result(tmp_path):
    env = {"XPNET_CACHE_DIR": str(tmp_path / "cache")}
    first = _fit(0, env)
    entries = _entries(tmp_path / "cache")
    for i, entry in enumerate(entries):
        data = entry.read_bytes()
        # half of them cut short (a crash mid-write), the others replaced by bytes of
        # another program's entry (a foreign file under this name)
        entry.write_bytes(data[: len(data) // 2] if i % 2 else entries[0].read_bytes()
                          if i else b"not an entry")
    again = _fit(0, env)
    assert again["weights"] == first["weights"]
    assert any("persistent compilation cache" in w for w in again["warnings"]), again


def test_off_and_no_cache_write_nothing(tmp_path):
    home = tmp_path / "home"
    _fit(0, {"XPNET_CACHE_DIR": "off", "HOME": str(home), "XDG_CACHE_HOME": str(home)})
    assert not home.exists()
    proc = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--backend", "jax", "--compile",
         "--epochs", "5", "--no-cache", "--quiet"],
        env={**os.environ, "XPNET_CACHE_DIR": str(tmp_path / "cli")}, cwd=tmp_path,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "cli").exists()


def test_default_folder_is_under_the_users_cache_and_backends_names_it(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    _fit(0, env)
    folder = tmp_path / "xdg" / "xpnet" / "jax"
    assert _entries(folder)
    base = {k: v for k, v in os.environ.items() if k != "XPNET_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-m", "xpnet", "backends"], env={**base, **env},
                          capture_output=True, text=True, timeout=300)
    line = proc.stdout.splitlines()[-1]
    assert line.startswith(f"compile cache  {folder} (JAX programs: "), line
    assert "XPNET_CACHE_DIR=off turns it off" in line


def test_the_users_own_jax_cache_folder_is_left_as_it_is(tmp_path):
    env = {"XPNET_CACHE_DIR": str(tmp_path / "xpnet"),
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "theirs")}
    _fit(0, env)
    assert not (tmp_path / "xpnet").exists()
    # JAX's own default thresholds apply there (only programs that took over a second)
    assert (tmp_path / "theirs").is_dir()


def test_set_compile_cache_checks_its_argument():
    import xpnet

    with pytest.raises(TypeError, match="directory must be a path"):
        xpnet.set_compile_cache(3)
