"""The preset registry, and presets whose handles are published checkpoint URLs.

`PRESETS` maps every built-in name to one entry shape:

- a published checkpoint (big_vision, MaskGIT): the data entry of its
  family's `*_presets.py` (`{"metadata", "task", "files": {key: url}, ...}`)
  plus `"class"` (the class that loads it) and `"build"`, the converter as
  a `"module:function"` string (`keras_givt.conversion.registry:build_preset`);
- a model bundled in the package: `{"metadata", "task", "class", "path"}`.

keras-hub resolves `kaggle://`, `hf://`, ... handles and local preset
directories; big_vision publishes plain `https://` files in its own formats
(params-only `.npz`, legacy flax msgpack). For those, `resolve_preset`:

1. imports the converter named by `entry["build"]` (only now: `import
   keras_givt` imports nothing of `keras_givt.conversion`), which downloads
   every file once (`keras_givt.conversion.download.fetch`, Keras cache;
   offline, the error names the URL and how to load a local file) and builds
   the model,
2. saves it once into a keras-hub preset directory in the Keras cache
   (`$KERAS_HOME/models/keras_givt/presets/<name>`; written to a temporary
   directory and renamed, so an interrupted conversion leaves nothing),
3. returns that directory, which the keras-hub loaders then read.

Any other handle (a local directory, `kaggle://`, `hf://`) passes through.
"""

import importlib
import json
import os
import shutil
import tempfile

import keras

# The converter of every published preset, imported when one is first converted.
PUBLISHED_BUILDER = "keras_givt.conversion.registry:build_preset"

# name -> entry (see the module docstring).
PRESETS = {}


def register_presets(presets):
    """Registers `{name: entry}` (data entries of a `*_presets.py`, or bundled models).

    Each entry names its class in `entry["task"]`; an entry without a
    `"path"` (a published checkpoint) gets `"build": PUBLISHED_BUILDER`
    unless it names its own converter.
    """
    for name, entry in presets.items():
        entry = dict(entry, **{"class": entry["task"]})
        if "path" not in entry:
            entry.setdefault("build", PUBLISHED_BUILDER)
        PRESETS[name] = entry


def presets_for(class_names):
    return {k: v for k, v in PRESETS.items() if v["class"] in class_names}


def import_callable(spec):
    """The function named by a `"package.module:function"` string."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"Expected a 'module:function' string; received {spec!r}.")
    return getattr(importlib.import_module(module), name)


def keras_home():
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def cache_root():
    return os.path.join(keras_home(), "models", "keras_givt", "presets")


def _checked_local(preset):
    """`preset`, after checking the files of a local preset folder.

    A truncated or corrupt weights / config / `.keras` file raises a
    `ValueError` naming it (`keras_givt.utils.file_checks`) instead of a bare
    h5py/zip error from inside Keras. Other handles pass through.
    """
    if isinstance(preset, (str, os.PathLike)) and os.path.isdir(preset):
        from keras_givt.utils import file_checks

        file_checks.check_preset_dir(preset)
    return preset


def load_weights_checked(model, filepath, load, config_path=None):
    """Runs `load()` (which loads `filepath` into `model`); a mismatch names both.

    Keras reports a weights file that does not fit the model built from the
    config (another layer count or width) as e.g. "Layer 'dense' expected 2
    variables, but received 0" or a shape mismatch in `assign`, naming
    neither the file nor the config. This re-raises it as a `ValueError`
    naming the weights file, the config (file and its size arguments) and
    Keras' message.

    Args:
        model: the model being loaded.
        filepath: the weights file.
        load: callable with no arguments doing the load.
        config_path: optional path of the config the model was built from
            (default: `config.json` beside `filepath`, if present).
    """
    from keras_givt.utils import file_checks

    filepath = os.fspath(filepath)
    if os.path.isfile(filepath):
        file_checks.check_file(filepath)
    try:
        return load()
    except ValueError as e:
        is_task = os.path.basename(filepath).startswith("task")
        if config_path is None:
            folder = os.path.dirname(os.path.abspath(filepath))
            for name in ("task.json", "config.json") if is_task else ("config.json",):
                candidate = os.path.join(folder, name)
                if os.path.isfile(candidate):
                    config_path = candidate
                    break
        try:
            config = model.get_config()
        except Exception:
            config = {}
        sizes = {
            k: v
            for k, v in config.items()
            if isinstance(v, (int, float, list, tuple)) and not isinstance(v, bool)
        }
        source = f" {config_path!r}" if config_path else ""
        counts = ""
        if not is_task:
            num_arrays = _count_weight_arrays(filepath)
            if num_arrays is not None:
                counts = (
                    f" The file holds {num_arrays} weight arrays; the model has "
                    f"{len(model.weights)} variables."
                )
        raise ValueError(
            f"The weights file {filepath!r} does not match the {type(model).__name__} built "
            f"from the config{source} ({', '.join(f'{k}={v!r}' for k, v in sizes.items())}): "
            f"different layer count or widths?{counts} Keras says: {e}"
        ) from e


def _count_weight_arrays(filepath):
    """Datasets in a Keras `.weights.h5` file outside `optimizer/` (None if unreadable)."""
    try:
        import h5py

        count = [0]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer"):
                count[0] += 1

        with h5py.File(filepath, "r") as f:
            f.visititems(visit)
        return count[0]
    except Exception:
        return None


def resolve_preset(preset, files=None):
    """A keras-hub preset directory for `preset` (converting big_vision files once).

    Args:
        preset: a registered preset name, or any keras-hub handle/directory.
        files: optional `{key: local path}` overriding the preset's URLs
            (to convert files downloaded by hand).

    Example:
    ```python
    folder = resolve_preset("givt_uvim_nyu_depth", files={"givt": "g.npz", "vae": "v.npz"})
    ```
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        return _checked_local(preset)
    entry = PRESETS[preset]
    if "path" in entry:  # A keras-hub preset folder shipped inside the package.
        return _checked_local(entry["path"])
    target = os.path.join(cache_root(), preset)
    if os.path.exists(os.path.join(target, "config.json")):
        return _checked_local(target)
    build = entry["build"]
    if isinstance(build, str):
        build = import_callable(build)
    model = build(entry, files)  # Downloads what `files` does not give, then converts.
    os.makedirs(cache_root(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{preset}-", dir=cache_root())
    try:
        if hasattr(model, "save_to_preset"):
            model.save_to_preset(tmp)
        else:  # A plain keras.Model (the VAE): one `.keras` file.
            model.save(os.path.join(tmp, "model.keras"))
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(keras.saving.serialize_keras_object(model), f)
        if os.path.exists(target):  # A concurrent conversion won the race.
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    from keras_givt.utils import keras_hub_registry

    keras_hub_registry.register_preset(preset, entry)  # keras-hub finds it by name from now on.
    return target


def strip_optimizer_state(path):
    """Rewrites a Keras `.weights.h5` file without its `optimizer` group.

    Every other group, dataset and attribute is copied unchanged (datasets
    bit for bit). Returns True if the file held optimizer state.

    Args:
        path: str or path-like, the `.weights.h5` file (rewritten in place).
    """
    import h5py

    path = os.fspath(path)
    with h5py.File(path, "r") as src:
        if "optimizer" not in src:
            return False
        tmp = path + ".tmp"
        with h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                if key != "optimizer":
                    src.copy(src[key], dst, name=key)
    os.replace(tmp, path)
    return True
