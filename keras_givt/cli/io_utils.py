"""Small file helpers of the CLI: atomic JSON/npz writes, a pure-numpy PNG writer, image grids.

No keras import here (the CLI imports this before choosing the backend).
"""

import json
import os
import struct
import tempfile
import zlib

import numpy as np


class CLIError(Exception):
    """A user error of the CLI: printed as `keras-givt <command>: error: ...`, exit status 2."""


def atomic_write_bytes(path, data):
    """Write `data` to `path` through a temp file in the same folder, then rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path, obj):
    """Atomically write `obj` as indented JSON (numpy values converted)."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_npz(path, **arrays):
    """Atomically write an uncompressed `.npz`."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def to_uint8(images):
    """(N, H, W[, C]) floats in [-1, 1] -> uint8 (N, H, W, C)."""
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def make_grid(images, ncols, pad=2, pad_value=255):
    """Tile uint8 (N, H, W, C) images into one (rows, cols) grid image."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def encode_png(image):
    """PNG bytes of a uint8 (H, W), (H, W, 1) or (H, W, 3) array (pure numpy + zlib)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"PNG images must be uint8; received {image.dtype}.")
    if image.ndim == 2:
        image = image[..., None]
    h, w, c = image.shape
    if c not in (1, 3, 4):
        raise ValueError(f"PNG images need 1, 3 or 4 channels; received shape {image.shape}.")
    color_type = {1: 0, 3: 2, 4: 6}[c]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * c)], axis=1)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def write_png(path, image):
    """Atomically write a uint8 image as PNG."""
    atomic_write_bytes(path, encode_png(image))


def read_png(path):
    """Decode a PNG written by `encode_png` (8-bit, no interlace, filter 0) -> uint8 (H, W, C)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path!r} is not a PNG file.")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, color_type = header[:4]
    c = {0: 1, 2: 3, 6: 4}[color_type]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    if raw[:, 0].any():
        raise ValueError("Only unfiltered PNG rows are supported by read_png.")
    return raw[:, 1:].reshape(h, w, c)
