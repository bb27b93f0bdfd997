"""Reader for the IDX files of MNIST and Fashion-MNIST (plain or gzip).

Dimension letters: N examples, H height, W width.

The IDX format: two zero bytes, one type byte, one byte with the number of
dimensions `nd`, then `nd` big-endian uint32 sizes, then the data (row-major).
MNIST and Fashion-MNIST use type `0x08` (uint8) only; the other IDX types are
read too for completeness.
"""

import gzip
import os
import zlib

import numpy as np

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an IDX file (`.gz` or uncompressed) into a numpy array.

    Args:
        path: str or path-like. The file; a name ending in `.gz` is read
            through gzip.

    Returns:
        A numpy array with the shape stored in the file: `(N, H, W)` uint8
        for image files, `(N,)` uint8 for label files.

    Example:

    ```python
    images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    images.shape  # (10000, 28, 28)
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file {path!r} does not exist.")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(
            f"IDX file {path!r} is truncated or corrupt ({os.path.getsize(path)} bytes on disk): "
            f"{type(e).__name__}: {e}"
        ) from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"`path` is not an IDX file (bad magic number); received path={path!r}.")
    type_code, nd = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(
            f"`path` has an unknown IDX type byte 0x{type_code:02x}; received path={path!r}."
        )
    dtype = _IDX_DTYPES[type_code]
    header = 4 + 4 * nd
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"IDX file {path!r} is truncated or corrupt: it has {len(data)} bytes but its header "
            f"(shape {shape}) needs {expected}."
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)
