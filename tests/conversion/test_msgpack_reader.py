"""Legacy flax msgpack reader (msgpack + numpy only)."""

import os
import re

import msgpack
import numpy as np
import pytest

from keras_givt.conversion import msgpack_reader
from tests.conftest import BIG_VISION_FIXTURES

MALIB = os.path.join(BIG_VISION_FIXTURES, "vae_malib_pixelshuffle", "params_malib")


def _keys_txt_shapes():
    shapes = {}
    with open(os.path.join(os.path.dirname(MALIB), "keys.txt")) as f:
        for line in f:
            m = re.match(r"\s*(\S+)\s+shape=(\([^)]*\))\s+dtype=", line)
            if m and m.group(1).split("/")[0] in ("ema_params", "g_params", "step"):
                shapes[m.group(1)] = m.group(2)
    return shapes


def test_reads_fixture_tree():
    flat = msgpack_reader.read_msgpack(MALIB)
    listed = _keys_txt_shapes()
    assert set(flat) == set(listed)
    for name, value in flat.items():
        assert str(tuple(value.shape)) == listed[name], name
        assert value.dtype in (np.float32, np.int32)
    assert int(flat["step"]) == int(np.asarray(flat["step"]))
    ema = msgpack_reader.read_msgpack_params(MALIB)
    g = msgpack_reader.read_msgpack_params(MALIB, "g_params")
    assert "encoder/Conv_0/kernel" in ema and set(ema) == set(g)
    assert not np.allclose(ema["encoder/Conv_0/kernel"], g["encoder/Conv_0/kernel"])
    with pytest.raises(ValueError, match="no 'params' subtree"):
        msgpack_reader.read_msgpack_params(MALIB, "params")


def test_truncated_file_raises_naming_it(tmp_path):
    with open(MALIB, "rb") as f:
        data = f.read()
    path = tmp_path / "truncated_params"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated_params"):
        msgpack_reader.read_msgpack(path)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x81\xa3abc\xc7")
    with pytest.raises(ValueError, match="garbage"):
        msgpack_reader.read_msgpack(garbage)
    with pytest.raises(ValueError, match="does_not_exist"):
        msgpack_reader.read_msgpack(tmp_path / "does_not_exist")


def _ext(arr):
    payload = msgpack.packb([list(arr.shape), arr.dtype.name, arr.tobytes()])
    return msgpack.ExtType(1, payload)


def test_chunked_arrays_scalars_and_lists(tmp_path):
    big = np.arange(10, dtype=np.float32).reshape(2, 5)
    flat = big.reshape(-1)
    tree = {
        "a": {"0": _ext(np.ones((2, 3), np.float16)), "1": _ext(np.array(3, np.int64))},
        "big": {
            "__msgpack_chunked_array__": True,
            "shape": {"0": 2, "1": 5},
            "chunks": {"0": _ext(flat[:4]), "1": _ext(flat[4:])},
        },
        "s": msgpack.ExtType(3, msgpack.packb([[], "float32", np.float32(2.5).tobytes()])),
    }
    path = tmp_path / "ckpt"
    path.write_bytes(msgpack.packb(tree))
    out = msgpack_reader.read_msgpack(path)
    assert out["a/0"].dtype == np.float16 and out["a/0"].shape == (2, 3)
    assert int(out["a/1"]) == 3
    np.testing.assert_array_equal(out["big"], big)
    assert float(out["s"]) == 2.5
