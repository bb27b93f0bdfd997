"""Integrity checks of model files before Keras/keras-hub read them.

A truncated download or a corrupt file otherwise surfaces as a bare h5py
`OSError` ("Unable to synchronously open file (truncated file: eof = ...)"),
a `zipfile.BadZipFile`, a `JSONDecodeError` or even "file not found" from deep
inside Keras, none naming the file. These helpers raise one `ValueError` that
names the file, says it is truncated or corrupt and shows its size, before any
model is built.
"""

import json
import os
import zipfile

# What each preset file is (for messages).
_KINDS = {".h5": "weights", ".json": "config", ".keras": "Keras model", ".npz": "npz"}


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _corrupt(path, kind, detail):
    size = _size(path)
    return ValueError(
        f"The {kind} file {path!r} is truncated or corrupt ({size} bytes): {detail}. "
        "Delete it and download or save it again."
    )


def _require_file(path, kind):
    if not os.path.exists(path):
        raise FileNotFoundError(f"The {kind} file {path!r} does not exist.")
    if not os.path.isfile(path):
        raise ValueError(f"The {kind} file {path!r} is not a regular file.")
    if _size(path) == 0:
        raise _corrupt(path, kind, "the file is empty")


def _touch(obj):
    # Reads a dataset's header (shape, dtype); groups have none.
    return (obj.shape, obj.dtype) if hasattr(obj, "shape") else None


def check_h5_file(path, kind="weights"):
    """Opens an HDF5 file (`.h5`, `.weights.h5`) and walks all its objects.

    HDF5 detects a truncated file on open (its end-of-address is past the end
    of the file); walking the objects reads every header, so a corrupt
    header is caught too.

    Args:
        path: str or path-like, the file.
        kind: str, what the file is, for the message.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, truncated or not a valid HDF5 file.
    """
    import h5py

    path = os.fspath(path)
    _require_file(path, kind)
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: _touch(obj))
    except Exception as e:  # h5py raises OSError, KeyError, RuntimeError, ...
        raise _corrupt(path, kind, f"{type(e).__name__}: {e}") from e


def check_zip_file(path, kind="Keras model"):
    """Checks a zip archive (`.keras`, `.npz`): central directory and every CRC.

    Args:
        path: str or path-like, the file.
        kind: str, what the file is, for the message.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, truncated or a corrupt archive.
    """
    path = os.fspath(path)
    _require_file(path, kind)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, EOFError, zlib.error, OSError
        raise _corrupt(path, kind, f"{type(e).__name__}: {e}") from e
    if bad is not None:
        raise _corrupt(path, kind, f"member {bad!r} fails its CRC check")


def check_json_file(path, kind="config"):
    """Parses a JSON file; a truncated or corrupt one raises a `ValueError` naming it."""
    path = os.fspath(path)
    _require_file(path, kind)
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise _corrupt(path, kind, f"not valid JSON ({e})") from e


def check_file(path):
    """Checks one model file by its extension (`.h5`, `.keras`, `.npz`, `.json`).

    Files with other extensions are only required to exist.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    kind = _KINDS.get(ext, "model")
    if ext == ".h5":
        check_h5_file(path, kind)
    elif ext in (".keras", ".npz"):
        check_zip_file(path, kind)
    elif ext == ".json":
        check_json_file(path, kind)
    else:
        _require_file(path, kind)


def check_preset_dir(path):
    """Checks every model file of a local preset folder (see `check_file`).

    Sub-folders (e.g. `assets/`) and other files (model cards are JSON and
    checked too; images, text) are left alone except JSON.

    Args:
        path: str or path-like, a local directory.
    """
    path = os.fspath(path)
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and os.path.splitext(name)[1].lower() in _KINDS:
            check_file(full)
