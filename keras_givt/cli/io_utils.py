"""Small file helpers of the CLI: atomic JSON/npz writes, crash-safe folder swaps, a pure-numpy
PNG writer, image grids.

No keras import here (the CLI imports this before choosing the backend).

Crash safety. A folder that must always hold a complete, loadable state
(`<out>/checkpoint`, `<out>/preset`, `<out>/vae`, ...) is a symlink to a
hidden versioned folder next to it (`.checkpoint-<ns>`). `commit_dir` writes
the new version in full (every file and folder fsynced), then replaces the
symlink with `os.replace` (atomic: the link names the old or the new version,
never neither), then deletes the old version. A kill at any instant leaves
at worst unreferenced versions or temp links, which `recover_dir` (run by
the next writer) deletes.
"""

import fcntl
import json
import os
import signal
import struct
import tempfile
import time
import zlib

import numpy as np

from keras_givt.cli.errors import CLIError  # noqa: F401  (re-exported)

# Test hook: `KERAS_GIVT_TEST_KILL_AT=<point>[:<n>]` SIGKILLs this process the
# n-th time (default 1st) it reaches `kill_point(<point>)`.
KILL_ENV = "KERAS_GIVT_TEST_KILL_AT"
_kill_counts = {}


class SimulatedKill(BaseException):
    """Raised instead of SIGKILL when `kill_point` is in simulate mode (in-process tests).

    A BaseException that no command handler catches, so nothing is cleaned
    up or finalised: the files are left as a SIGKILL would leave them.
    """


def kill_point(name):
    """SIGKILLs the process here if `$KERAS_GIVT_TEST_KILL_AT` names this point (test hook)."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    point, _, nth = spec.rpartition(":")
    if not nth.isdigit():
        point, nth = spec, "1"
    if point != name:
        return
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if _kill_counts[name] != int(nth or 1):
        return
    if os.environ.get(KILL_ENV + "_SIMULATE"):
        _kill_counts.clear()
        raise SimulatedKill(name)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # SIGKILL is delivered asynchronously.


def fsync_path(path, directory=False):
    """fsyncs one file (or, with `directory=True`, one folder's entries)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root):
    """fsyncs every file and folder under `root` (and `root` itself)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath, directory=True)


def _versions(dest):
    parent, name = os.path.split(os.path.abspath(dest))
    prefix = f".{name}-"
    if not os.path.isdir(parent):
        return parent, []
    return parent, sorted(e for e in os.listdir(parent) if e.startswith(prefix))


def _link_target(dest):
    """The versioned folder `dest` links to (absolute), or None."""
    if not os.path.islink(dest):
        return None
    target = os.readlink(dest)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(dest)), target))


def dir_exists(dest):
    """True if `dest` is a complete folder (a committed version, or a plain folder)."""
    if os.path.islink(dest):
        return os.path.isdir(dest)
    if os.path.isdir(dest):
        return True
    return _latest_complete(dest) is not None


_COMPLETE = ".complete"


def _latest_complete(dest):
    parent, names = _versions(dest)

    def stamp(n):
        try:
            return int(n.rsplit("-", 2)[-2])
        except ValueError:
            return None

    done = [
        n
        for n in names
        if not os.path.islink(os.path.join(parent, n))
        and stamp(n) is not None
        and os.path.isfile(os.path.join(parent, n, _COMPLETE))
    ]
    if not done:
        return None
    return os.path.join(parent, max(done, key=stamp))


def recover_dir(dest):
    """Repairs what a kill during `commit_dir(..., dest)` left, then removes the leftovers.

    If `dest` is missing (a kill while a plain folder from an older version
    of this tool was being replaced), the newest complete version becomes
    `dest`. Versions that `dest` does not link to, and temp links, are
    deleted. Returns True if `dest` exists afterwards.
    """
    import shutil

    if not os.path.lexists(dest) or (os.path.islink(dest) and not os.path.isdir(dest)):
        latest = _latest_complete(dest)
        if latest is not None:
            _swap_link(dest, latest)
    keep = _link_target(dest)
    parent, names = _versions(dest)
    for n in names:
        path = os.path.join(parent, n)
        if keep is not None and os.path.normpath(path) == keep:
            continue
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return os.path.isdir(dest)


def _swap_link(dest, version_dir):
    parent = os.path.dirname(os.path.abspath(dest))
    link = os.path.join(
        parent, f".{os.path.basename(os.path.abspath(dest))}-link-{time.time_ns()}-{os.getpid()}"
    )
    os.symlink(os.path.basename(version_dir), link)
    os.replace(link, dest)
    fsync_path(parent, directory=True)


def new_version_dir(dest):
    """A fresh, empty hidden folder next to `dest` to write a new version into."""
    parent, name = os.path.split(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{name}-{time.time_ns()}-{os.getpid()}")
    os.makedirs(path)
    return path


def commit_dir(version_dir, dest, what="dir"):
    """Makes `dest` the complete folder `version_dir` (from `new_version_dir(dest)`), crash-safely.

    Order: fsync everything in `version_dir`, mark it complete, swap the
    `dest` symlink with `os.replace`, delete the previous version. A plain
    (non-symlink) `dest` folder is first renamed to a complete version, so
    `recover_dir` can bring it back if a kill lands before the swap.
    Kill points (tests): `<what>:written`, `<what>:swapped`, `<what>:cleaned`.
    """
    import shutil

    with open(os.path.join(version_dir, _COMPLETE), "w") as f:
        f.write("complete\n")
    fsync_tree(version_dir)
    kill_point(f"{what}:written")
    old = _link_target(dest)
    if os.path.isdir(dest) and not os.path.islink(dest):  # Plain folder: an older layout.
        with open(os.path.join(dest, _COMPLETE), "w") as f:
            f.write("complete\n")
        parent, name = os.path.split(os.path.abspath(dest))
        old = os.path.join(parent, f".{name}-0-{os.getpid()}")  # 0: older than any new version
        os.replace(dest, old)
    _swap_link(dest, version_dir)
    kill_point(f"{what}:swapped")
    if old is not None and os.path.normpath(old) != os.path.normpath(version_dir):
        shutil.rmtree(old, ignore_errors=True)
    kill_point(f"{what}:cleaned")


def remove_dir(dest):
    """Deletes `dest` (a symlink and its versions, or a plain folder) and its leftovers."""
    import shutil

    target = _link_target(dest)
    if os.path.islink(dest):
        os.remove(dest)
    elif os.path.isdir(dest):
        shutil.rmtree(dest)
    if target:
        shutil.rmtree(target, ignore_errors=True)
    recover_dir(dest)


class FolderLock:
    """An exclusive `flock` on `<folder>/.lock`: one writer per output folder (released on exit or kill)."""

    def __init__(self, folder, flag="--out"):
        self.folder = folder
        self.flag = flag
        self.fd = None

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        self.fd = os.open(os.path.join(self.folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise CLIError(
                f"{self.flag} {self.folder!r} is in use by another keras-givt process; "
                f"wait for it or pass another {self.flag}."
            )
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return False


_HELD_LOCKS = []


def hold_folder_lock(folder, flag="--out"):
    """Takes the `FolderLock` of `folder` until `release_folder_locks` (called by `main`)."""
    lock = FolderLock(folder, flag)
    lock.__enter__()
    _HELD_LOCKS.append(lock)
    return lock


def release_folder_locks():
    """Releases every lock taken by `hold_folder_lock` (`main` calls it when a command ends)."""
    while _HELD_LOCKS:
        _HELD_LOCKS.pop().__exit__(None, None, None)


def append_jsonl(path, obj):
    """Appends one JSON line to `path` (one `write` call, O_APPEND, fsynced)."""
    line = (json.dumps(_jsonable(obj), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path):
    """The records of a `append_jsonl` file (a torn last line, from a kill, is skipped)."""
    out = []
    if not os.path.isfile(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def atomic_write_bytes(path, data):
    """Write `data` to `path` through a temp file in the same folder, then rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
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
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

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
