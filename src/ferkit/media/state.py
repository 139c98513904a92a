"""NumPy arrays as plain JSON values, exactly (resume checkpoints hold running state this way, never pickled)."""

from __future__ import annotations

import numpy as np

_DTYPES = {"float64", "float32", "int64", "int32", "bool"}


def pack_array(a: np.ndarray) -> list:
    """``[dtype, shape, flat values]``: JSON floats round-trip float64 and float32 values exactly."""
    a = np.asarray(a)
    return [a.dtype.name, list(a.shape), a.ravel().tolist()]


def unpack_array(v: list) -> np.ndarray:
    """The array :func:`pack_array` packed; ``ValueError`` for anything else (the file is not trusted)."""
    dtype, shape, flat = v
    if dtype not in _DTYPES:
        raise ValueError(f"array dtype {dtype!r} not allowed")
    return np.asarray(flat, dtype=dtype).reshape([int(n) for n in shape])
