"""Dropout masks from a counter-based hash: the same bits on every backend, made on the device.

The Array API standard has no random numbers, and masks drawn on the host would cost a
host→device copy per step. So the keep/drop decision of unit ``j`` of hidden layer
``l`` for training row ``i`` at optimiser step ``s`` is a *function* of those counters
and a 64-bit key ``(k0, k1)`` derived from the network's seed, computed with Array API
integer operations (``multiply``, ``add``, ``bitwise_xor``, ``bitwise_right_shift``,
``bitwise_and``, ``>=``) on the device. Nothing but a few Python integers (the key, the
layer number, the step of an eager batch) comes from the host, and no value goes back.

Arithmetic is modulo 2**32 throughout, so every backend computes the same bits:

- **lanes**: ``uint32`` arrays on NumPy, CuPy, array-api-strict and JAX (in 32- and
  64-bit mode alike), where unsigned multiplication wraps modulo 2**32; ``int64`` arrays
  masked to their low 32 bits on PyTorch, whose ``uint32`` lacks ``>>``, ``+`` and ``>=``
  (torch 2.13, measured). An ``int64`` product of two values below 2**32 may wrap
  modulo 2**64 (two's complement on every backend), which leaves its low 32 bits, the
  only ones kept, exact; right shifts see only masked, non-negative values, so they are
  logical shifts as on ``uint32``.
- **scalars** (the key, the layer, an eager step) are Python integers masked the same
  way, or 0-d lanes (a step inside a compiled JAX epoch); both give the same bits.

The hash (``mix`` is MurmurHash3's 32-bit finaliser ``fmix32``, a bijection with full
avalanche; ``+`` and ``*`` are modulo 2**32)::

    layer key   K_l    = mix(k0 ^ mix(k1 + (l + 1) * C_LAYER))
    step key    K_ls   = mix(K_l ^ (s * C_STEP + C_OFFSET))       # s: optimiser step
    unit hash   u_j    = mix(j * C_UNIT + K_l)                     # (n_l,)
    row hash    r_i    = mix(i * C_ROW + K_ls)                     # (m,), i: global row
    word        w_ij   = mix_top(r_i ^ u_j)                        # (m, n_l)
    keep        M_ij   = w_ij >= T_l,  T_l = min(round(p_l * 2**32), 2**32 - 1)

``mix_top`` is ``fmix32`` without its last ``x ^= x >> 16``, which changes only the low 16
bits: the decision reads the top bits (``w >= T``), the best mixed ones of a
multiplicative hash, and the two operations saved are two of the ten per mask element.
Only ``w_ij`` is computed on the full ``(m, n_l)`` grid (about ten elementwise
operations); the keys and the row and unit hashes are vectors or scalars.

``P(keep) = (2**32 - T_l) / 2**32 = 1 - p_l`` to within ``2**-32``. The row index ``i`` is
the row's position in the training data (``order[first:last]`` for a shuffled batch), so
masks do not depend on how rows are batched, chunked or distributed: a Dask chunk makes
the masks of its rows from their global indices and the step number alone. Steps and
rows are taken modulo 2**32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "DropoutStream",
    "check_dropout",
    "dropout_key",
    "keep_mask",
    "keep_words",
    "lane_dtype",
    "scaled_masks",
    "threshold",
]

Array = Any

MASK32 = 0xFFFFFFFF
# MurmurHash3 fmix32 multipliers
_M1 = 0x85EBCA6B
_M2 = 0xC2B2AE35
# Odd multipliers that spread the counters before mixing (golden-ratio and
# splitmix-style constants); the offset keeps step 0 from meeting K_l unchanged.
C_LAYER = 0x27D4EB2F
C_STEP = 0x9E3779B1
C_OFFSET = 0x7F4A7C15
C_UNIT = 0x165667B1
C_ROW = 0xD3A2646D


class DropoutStream(NamedTuple):
    """Where a batch sits in the dropout stream: what the step needs besides the rates.

    Parameters
    ----------
    key : (int, int)
        The network's 64-bit dropout key (:func:`dropout_key` of its seed), as two
        Python integers below 2**32 (or 0-d integer arrays).
    step : int or 0-d integer array
        Optimiser steps the network had taken before this batch (its life's count).
    rows : integer array ``(m,)``
        The batch's global row indices: positions in the training data, on the device.
    """

    key: tuple[Any, Any]
    step: Any
    rows: Array


def dropout_key(seed_sequence: Any) -> tuple[int, int]:
    """Two 32-bit words from a NumPy ``SeedSequence`` (the network's third child)."""
    words = seed_sequence.generate_state(2)
    return int(words[0]), int(words[1])


def check_dropout(dropout: Any, n_hidden: int, name: str = "dropout") -> tuple[float, ...]:
    """Rates per hidden layer from a float (every hidden layer) or a sequence (one each).

    Each rate ``p`` must satisfy ``0 <= p < 1`` (0 turns dropout off for that layer).
    """
    import numbers

    def rate(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"{name}{where} must be a number in [0, 1) (the fraction of units "
                f"dropped); got {value!r}"
            )
        p = float(value)
        if not 0.0 <= p < 1.0:  # NaN fails too
            raise ValueError(f"{name}{where} must be in [0, 1); got {value!r}")
        return p

    if isinstance(dropout, (str, bytes)) or not (
        isinstance(dropout, numbers.Real) or isinstance(dropout, Sequence)
        or _is_sequence(dropout)
    ):
        raise TypeError(
            f"{name} must be a number in [0, 1) for every hidden layer, or a list of "
            f"them, one per hidden layer; got {dropout!r}"
        )
    if isinstance(dropout, numbers.Real):
        return (rate(dropout, ""),) * n_hidden
    rates = tuple(rate(value, f"[{index}]") for index, value in enumerate(dropout))
    if len(rates) != n_hidden:
        raise ValueError(
            f"{name} lists {len(rates)} rate{'' if len(rates) == 1 else 's'} but the "
            f"network has {n_hidden} hidden layer{'' if n_hidden == 1 else 's'}; give one "
            "rate, or one per hidden layer"
        )
    return rates


def _is_sequence(value: Any) -> bool:
    """Ordered, sized collections that are not mappings (a NumPy vector, a tuple)."""
    from collections.abc import Mapping, Set

    if isinstance(value, (Mapping, Set)):
        return False
    return hasattr(value, "__len__") and hasattr(value, "__getitem__")


def threshold(rate: float) -> int:
    """``T = round(p * 2**32)`` (at most ``2**32 - 1``): a word is kept when ``>= T``."""
    return min(round(rate * 2.0**32), MASK32)


# ---------------------------------------------------------------------- lanes
def _is_torch(xp: Any) -> bool:
    from array_api_compat import is_torch_namespace

    return bool(is_torch_namespace(xp))


def lane_dtype(xp: Any) -> Any:
    """``uint32``, or ``int64`` on PyTorch (its ``uint32`` lacks ``>>``, ``+``, ``>=``)."""
    return xp.int64 if _is_torch(xp) else xp.uint32


class _Lanes:
    """Modulo-2**32 arithmetic on one kind of value: Python ints (masked), ``uint32``
    arrays (which wrap by themselves) or ``int64`` arrays (masked after ``+`` and ``*``).

    On JAX, Python integers above 2**31 cannot meet an array (JAX reads them as weakly
    typed int32 and refuses the overflow), so there the constants become 0-d ``uint32``
    arrays first; elsewhere they stay Python integers (NumPy's and array-api-strict's
    promotion keeps the array's ``uint32``).
    """

    def __init__(self, xp: Any = None, device: Any = None) -> None:
        self.wrap = xp is None or _is_torch(xp)
        self.xp = xp
        self.device = device
        self.as_array = xp is not None and _is_jax(xp)

    def const(self, value: int) -> Any:
        if self.as_array:
            return self.xp.asarray(value, dtype=self.xp.uint32, device=self.device)
        return value

    def mul(self, x: Any, c: int) -> Any:
        y = x * self.const(c)
        return y & MASK32 if self.wrap else y

    def add(self, x: Any, y: Any) -> Any:
        z = x + (self.const(y) if isinstance(y, int) else y)
        return z & MASK32 if self.wrap else z

    def xor(self, x: Any, y: Any) -> Any:
        return x ^ (self.const(y) if isinstance(y, int) else y)

    def mix_top(self, x: Any) -> Any:
        """fmix32 without its last ``x ^= x >> 16`` (see the module notes). Updates ``x``
        in place where arrays allow it (the callers pass arrays they just made: about a
        third less time on NumPy's grid than with a new array per operation); Python
        ints and JAX arrays are rebound."""
        x ^= x >> 16
        x *= self.const(_M1)
        if self.wrap:
            x &= MASK32
        x ^= x >> 13
        x *= self.const(_M2)
        if self.wrap:
            x &= MASK32
        return x

    def mix(self, x: Any) -> Any:
        """MurmurHash3's fmix32 (in place, as :meth:`mix_top`)."""
        x = self.mix_top(x)
        x ^= x >> 16
        return x


_PY = _Lanes()


def _is_jax(xp: Any) -> bool:
    from array_api_compat import is_jax_namespace

    return bool(is_jax_namespace(xp))


def _as_lanes(xp: Any, value: Any) -> Any:
    """An integer array as lanes (its values modulo 2**32)."""
    dtype = lane_dtype(xp)
    if dtype == xp.int64:
        return xp.astype(value, xp.int64) & MASK32
    return xp.astype(value, dtype)


def _layer_key(key: tuple[Any, Any], layer: int) -> int:
    """``K_l`` from the key and the (0-based) hidden layer: host integers only."""
    k0, k1 = (int(word) & MASK32 for word in key)
    return _PY.mix(k0 ^ _PY.mix(_PY.add(k1, _PY.mul(layer + 1, C_LAYER))))


def keep_words(
    xp: Any, key: tuple[Any, Any], step: Any, layer: int, rows: Array, n_units: int
) -> Array:
    """The hash words ``w_ij`` ``(m, n_units)`` in lanes (see the module notes).

    ``rows``: integer array ``(m,)`` of global row indices, on the device the words are
    made on. ``step``: Python int or 0-d integer array.
    """
    from array_api_compat import device as device_of

    device = device_of(rows)
    lanes = _Lanes(xp, device)
    layer_key = _layer_key(key, layer)
    if isinstance(step, int):  # eager: the step key is a host integer
        step_key: Any = _PY.mix(layer_key ^ _PY.add(_PY.mul(step & MASK32, C_STEP), C_OFFSET))
    else:  # a 0-d array (a compiled epoch's counter): the same bits, on the device, as a
        # (1,) vector (NumPy warns of overflow in 0-d arithmetic, which returns scalars)
        s = xp.reshape(_as_lanes(xp, step), (1,))
        step_key = lanes.mix(lanes.xor(lanes.add(lanes.mul(s, C_STEP), C_OFFSET), layer_key))
    units = xp.arange(n_units, dtype=lane_dtype(xp), device=device)
    unit_hash = lanes.mix(lanes.add(lanes.mul(units, C_UNIT), layer_key))
    row_hash = lanes.mix(lanes.add(lanes.mul(_as_lanes(xp, rows), C_ROW), step_key))
    return lanes.mix_top(xp.reshape(row_hash, (-1, 1)) ^ xp.reshape(unit_hash, (1, -1)))


def keep_mask(
    xp: Any, key: tuple[Any, Any], step: Any, layer: int, rows: Array, n_units: int,
    rate: float,
) -> Array:
    """Boolean keep mask ``M`` ``(m, n_units)``: True where the unit is kept (``w >= T``)."""
    from array_api_compat import device as device_of

    words = keep_words(xp, key, step, layer, rows, n_units)
    return words >= _Lanes(xp, device_of(rows)).const(threshold(rate))


def scaled_masks(
    xp: Any, stream: DropoutStream, rates: Sequence[float], widths: Sequence[int],
    dtype: Any,
) -> list[Array | None]:
    """``M_l / (1 - p_l)`` per hidden layer in ``dtype`` (``None`` where ``p_l = 0``).

    The scale is one Python float per layer, rounded once to ``dtype``: the same values
    on every backend.
    """
    masks: list[Array | None] = []
    for layer, (rate, width) in enumerate(zip(rates, widths, strict=True)):
        if rate == 0.0:
            masks.append(None)
            continue
        keep = keep_mask(xp, stream.key, stream.step, layer, stream.rows, width, rate)
        scaled = xp.astype(keep, dtype)
        scaled *= 1.0 / (1.0 - rate)  # D = M / (1 - p), in place on the new array
        masks.append(scaled)
    return masks
