"""Reads legacy flax msgpack checkpoints with `msgpack` and numpy only.

flax's `serialization.msgpack_serialize` format (what big_vision's
published VAE files are):
- the state is a msgpack map of maps (lists became maps with "0", "1", ...
  keys);
- arrays are msgpack ext type 1, whose payload is itself msgpack
  `[shape, dtype_name, raw_bytes]` (C order, little endian);
- ext type 2 is a native complex `[real, imag]`, ext type 3 a numpy scalar
  `[shape, dtype_name, raw_bytes]`;
- arrays over flax's chunk size are maps `{"__msgpack_chunked_array__": ...,
  "shape": ..., "chunks": {"0": ..., ...}}` of flat chunks.

`read_msgpack(path)` returns the whole tree flattened to `{'a/b/c': array}`.
A truncated or corrupt file raises `ValueError` naming the file.
"""

import os

import numpy as np

EXT_NDARRAY = 1
EXT_NATIVE_COMPLEX = 2
EXT_NPSCALAR = 3
_CHUNKED = "__msgpack_chunked_array__"


def _decode_array(payload):
    import msgpack

    shape, dtype_name, buffer = msgpack.unpackb(payload, raw=False)
    return np.frombuffer(buffer, dtype=np.dtype(dtype_name)).reshape(shape).copy()


def _ext_hook(code, data):
    import msgpack

    if code == EXT_NDARRAY:
        return _decode_array(data)
    if code == EXT_NPSCALAR:
        return _decode_array(data)[()]
    if code == EXT_NATIVE_COMPLEX:
        real, imag = msgpack.unpackb(data, raw=False)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunk(tree):
    if isinstance(tree, dict):
        if _CHUNKED in tree:
            chunks = tree["chunks"]
            flat = np.concatenate([np.ravel(chunks[str(i)]) for i in range(len(chunks))])
            shape = tree["shape"]
            if isinstance(shape, dict):  # flax stores tuples as {"0": .., "1": ..}.
                shape = [shape[str(i)] for i in range(len(shape))]
            return flat.reshape(tuple(int(d) for d in shape))
        return {str(k): _unchunk(v) for k, v in tree.items()}
    return tree


def flatten_tree(tree, prefix=""):
    """Nested dicts -> `{'a/b/c': leaf}`."""
    out = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            name = f"{prefix}/{key}" if prefix else str(key)
            out.update(flatten_tree(value, name))
    else:
        out[prefix] = tree
    return out


def read_msgpack_tree(path):
    """The nested state dict of a flax msgpack file."""
    import msgpack

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"Could not read the flax msgpack checkpoint {path!r}: {e}") from e
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several types for truncation/corruption.
        raise ValueError(
            f"Could not read the flax msgpack checkpoint {path!r} (truncated or corrupt? "
            f"{type(e).__name__}: {e})"
        ) from e
    if not isinstance(tree, dict):
        raise ValueError(
            f"The flax msgpack checkpoint {path!r} does not hold a state dict "
            f"(top level is {type(tree).__name__})."
        )
    return _unchunk(tree)


def read_msgpack(path):
    """`{'a/b/c': numpy array}` for every leaf of a flax msgpack file."""
    flat = flatten_tree(read_msgpack_tree(path))
    return {k: np.asarray(v) for k, v in flat.items()}


def read_msgpack_params(path, subtree="ema_params"):
    """The arrays under `subtree/` (e.g. "ema_params" or "g_params"), prefix removed."""
    flat = read_msgpack(path)
    prefix = subtree + "/"
    params = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
    if not params:
        tops = sorted({k.split("/")[0] for k in flat})
        raise ValueError(
            f"The flax msgpack checkpoint {os.fspath(path)!r} has no {subtree!r} subtree; "
            f"top-level entries: {tops}."
        )
    return params


def is_msgpack_file(path):
    """Heuristic: not a zip (npz) and starts like a msgpack map."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return False
    return bool(head) and (head[0] & 0xF0 == 0x80 or head[0] in (0xDE, 0xDF))
