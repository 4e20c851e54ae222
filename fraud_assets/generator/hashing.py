"""Counter-based randomness and identifiers.

Everything that must not depend on the generated range (trip schedules,
wallet addresses, transaction ids) is a pure function of the seed and a few
integer keys, computed with the splitmix64 finaliser over numpy arrays. The
same (seed, keys) always gives the same value, whichever range asks for it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash64(*keys: int | np.ndarray) -> np.ndarray:
    """A 64-bit hash of the integer keys, broadcast over arrays."""
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast_shapes(*(np.shape(k) for k in keys)), _GOLDEN, dtype=np.uint64)
        for key in keys:
            k = np.asarray(key).astype(np.int64).astype(np.uint64)
            h = _mix(h ^ (k + _GOLDEN + (h << np.uint64(6)) + (h >> np.uint64(2))))
    return h


def uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) from the keys (53 random bits)."""
    return (hash64(*keys) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def day_rng(seed: int, stream: int, day: int) -> np.random.Generator:
    """A numpy generator for one stream on one UTC day (days since 1970-01-01)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, stream, day + (1 << 20)])


def hex_strings(words: np.ndarray, n_chars: int, prefix: bytes = b"") -> pa.StringArray:
    """Fixed-width lowercase hex strings from rows of uint64 words, built without a Python loop.

    ``words`` has shape (n, k); each string is ``prefix`` followed by the first
    ``n_chars`` hex digits of the words' big-endian bytes, so comparing strings
    compares the words numerically.
    """
    words = np.atleast_2d(words)
    n = words.shape[0]
    raw = words.astype(">u8").view(np.uint8).reshape(n, -1)
    digits = np.empty((n, raw.shape[1] * 2), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[raw >> 4]
    digits[:, 1::2] = _HEX_DIGITS[raw & 0x0F]
    width = len(prefix) + n_chars
    body = np.empty((n, width), dtype=np.uint8)
    body[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    body[:, len(prefix) :] = digits[:, :n_chars]
    offsets = np.arange(n + 1, dtype=np.int64) * width
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(body).tobytes())
    ).cast(pa.string())
