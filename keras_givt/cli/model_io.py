"""Model folders of the `keras-givt` commands: save and load VAEs, tokenizers and tasks.

- `save_model_folder`/`load_model_folder`: `model.keras` + an info JSON, swapped
  in atomically (`save_vae`/`load_vae`: `<out>/vae/`, `save_tokenizer`/
  `load_tokenizer`: `<out>/tokenizer/`);
- `save_preset`: a task as a keras-hub preset folder, swapped in atomically;
  `save_task`: a trained task (`<out>/preset/`, weights without optimizer
  state) with its `model_card.json`;
- `resolve_model_dir`, `check_task_spec`, `load_task`: the `--model` of the
  GIVT sampling commands (a preset name, a preset folder or a `train` output
  folder); `load_vq_maskgit` the same for the VQ MaskGIT commands;
  `read_model_card`, `card_dataset`: what a preset folder's model card says;
- `read_latents`: the `.npz` written by `encode`.

No Keras import at module level: the model classes load on first use.
"""

import json
import os

from keras_givt.cli import checks
from keras_givt.cli import io_utils
from keras_givt.cli.errors import CLIError


def save_model_folder(model, folder, info_name, extra=None):
    """`folder/model.keras` + `folder/<info_name>` (`extra` plus the model config).

    Written in full to a new version folder, then swapped in atomically
    (`io_utils.commit_dir`): a kill at any instant keeps the previous folder.

    Args:
        model: a `keras.Model` with `get_config` (a VAE, a tokenizer).
        folder: the folder to write (replaced as a whole).
        info_name: the JSON file name next to `model.keras` (`vae.json`, `vq.json`).
        extra: a dict of more fields for that JSON file (data spec, class names).
    """
    tmp = io_utils.new_version_dir(folder)
    model.save(os.path.join(tmp, "model.keras"))
    io_utils.write_json(os.path.join(tmp, info_name), dict(extra or {}, config=model.get_config()))
    io_utils.commit_dir(tmp, folder, "model_folder")


def load_model_folder(path, cls, subfolder, info_name, flag, command):
    """`(model, info dict, abs folder)` of a `save_model_folder` folder.

    Args:
        path: the folder, or the `command` output folder holding it as `subfolder`.
        cls: the model class (`cls.from_preset(folder)` loads it).
        subfolder: the folder's name inside a `command` output folder.
        info_name: the JSON file written next to `model.keras`.
        flag: the argument named in error messages (`--vae`).
        command: the command whose output is expected (`train-vae`).

    Raises:
        CLIError: there is no `model.keras`.
    """
    if os.path.isdir(os.path.join(path, subfolder)):
        path = os.path.join(path, subfolder)
    if not os.path.isfile(os.path.join(path, "model.keras")):
        raise CLIError(
            f"{flag} {path!r} has no model.keras (expected a `{command}` output folder)."
        )
    model = cls.from_preset(path)
    info = {}
    if os.path.isfile(os.path.join(path, info_name)):
        info = io_utils.read_json(os.path.join(path, info_name))
    return model, info, os.path.abspath(path)


def save_vae(vae, vae_dir, extra=None):
    """`vae_dir/model.keras` (loadable with `BetaVAE.from_preset(vae_dir)`) + `vae.json`, atomically.

    Args:
        vae: the trained `BetaVAE`.
        vae_dir: the folder to write.
        extra: more fields for `vae.json` (data spec, class names).
    """
    save_model_folder(vae, vae_dir, "vae.json", extra)


def load_vae(path):
    """`(BetaVAE, vae.json dict, abs folder)` of a `train-vae` output folder or its `vae/` folder.

    Args:
        path: the folder (the `--vae` argument).
    """
    from keras_givt.models.vae.beta_vae import BetaVAE

    return load_model_folder(path, BetaVAE, "vae", "vae.json", "--vae", "train-vae")


def read_latents(path):
    """`(mu (N, L, D), logvar (N, L, D), labels (N,), meta dict)` of an `encode` .npz file.

    Args:
        path: the .npz file written by `keras-givt encode`.
    """
    import numpy as np

    with np.load(path) as data:
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        return data["mu"], data["logvar"], data["labels"], meta


def save_preset(model, preset_dir, card=None):
    """`task.save_to_preset` into a new version folder (+ `model_card.json`); then an atomic swap.

    Args:
        model: the task to save, as it is (see `save_task` for a trained one).
        preset_dir: the preset folder to write (replaced as a whole).
        card: the dict written as `model_card.json`; None: no model card.
    """
    tmp = io_utils.new_version_dir(preset_dir)
    os.rmdir(tmp)  # save_to_preset creates it.
    model.save_to_preset(tmp)
    if card is not None:
        io_utils.write_json(os.path.join(tmp, "model_card.json"), card)
    io_utils.commit_dir(tmp, preset_dir, "preset")


def save_task(model, preset_dir, card):
    """`save_preset` of a trained task, recompiled without an optimizer first, with its model card.

    Args:
        model: the trained task; it is recompiled without an optimizer first
            (the preset holds weights only).
        preset_dir: the preset folder to write (replaced as a whole).
        card: the dict written as `model_card.json`.
    """
    # A fresh optimizer: the preset ships weights only (Adam's moments would
    # double its size); `<out>/checkpoint` keeps the optimizer state.
    model.compile()
    save_preset(model, preset_dir, card)


# --- GIVT tasks for sampling ---------------------------------------------------


def resolve_model_dir(spec):
    """The preset folder of `spec`, or None for a registered (not bundled) preset name.

    Args:
        spec: a bundled preset name, a preset folder (with `task.json`) or a
            `train` output folder (with `preset/`).
    """
    from keras_givt.models import bundled

    if spec in bundled.BUNDLED:
        return bundled.preset_path(spec)
    if os.path.isdir(os.path.join(spec, "preset")):
        return os.path.join(spec, "preset")
    if os.path.isfile(os.path.join(spec, "task.json")):
        return spec
    return None


def check_task_spec(spec):
    """Raises CLIError unless `spec` names a GIVT preset or folder (cheap: nothing is loaded).

    Args:
        spec: the `--model` argument of a GIVT sampling command.
    """
    if resolve_model_dir(spec) is not None:
        return
    from keras_givt.models import bundled
    from keras_givt.utils import preset_utils

    if spec not in preset_utils.PRESETS:
        raise CLIError(
            f"argument --model: not a preset name, a preset folder (with task.json) or a `train` "
            f"output folder; received {spec!r}. Bundled presets: {sorted(bundled.BUNDLED)}."
        )
    _check_givt_class(spec, preset_utils.PRESETS[spec]["class"])


def load_task(spec):
    """`(GIVTCausal or GIVTMaskGIT, model card dict)` of a GIVT preset name or folder.

    Args:
        spec: a preset name, a preset folder or a `train` output folder.

    Raises:
        CLIError: `spec` is not a GIVT model, or a folder's model has no VAE.
    """
    import keras_givt

    check_task_spec(spec)
    path = resolve_model_dir(spec)
    if path is None:
        from keras_givt.utils import preset_utils

        _check_givt_class(spec, preset_utils.PRESETS[spec]["class"])
        cls = (
            keras_givt.GIVTMaskGIT
            if preset_utils.PRESETS[spec]["class"] == "GIVTMaskGIT"
            else keras_givt.GIVTCausal
        )
        return cls.from_preset(spec), dict(preset_utils.PRESETS[spec].get("metadata", {}))
    with open(os.path.join(path, "task.json")) as f:
        task_json = json.load(f)
    name = task_json.get("registered_name", "") + task_json.get("class_name", "")
    _check_givt_class(spec, task_json.get("class_name", ""))
    cls = keras_givt.GIVTMaskGIT if "MaskGIT" in name else keras_givt.GIVTCausal
    card = read_model_card(path)
    model = cls.from_preset(path)
    if model.vae is None:
        raise CLIError(f"--model {spec!r} has no VAE: it cannot produce images.")
    return model, card


def _check_givt_class(spec, class_name):
    if class_name in checks.OTHER_FAMILIES:
        raise CLIError(
            f"--model {spec!r} is a {class_name}, not a GIVT image generator; use "
            f"{checks.OTHER_FAMILIES[class_name]}."
        )


def read_model_card(path):
    """The `model_card.json` dict of a preset folder, else {} (a folder without one).

    Args:
        path: the preset folder.
    """
    if os.path.isfile(os.path.join(path, "model_card.json")):
        return io_utils.read_json(os.path.join(path, "model_card.json"))
    return {}


def card_dataset(card):
    """The built-in data set (`fashion_mnist`, `mnist`) a model card names, else None.

    Args:
        card: a model card dict (`model_card.json`, a preset's metadata).
    """
    data = (card.get("data") or {}).get("data") or {}
    if isinstance(data, dict):
        data = data.get("data")
    return data if data in ("fashion_mnist", "mnist") else None


# --- VQGAN tokenizer and VQ MaskGIT ------------------------------------------------


def save_tokenizer(tok, tok_dir, extra=None):
    """`tok_dir/model.keras` (`VQGANTokenizer.from_preset(tok_dir)`) + `vq.json`, atomically.

    Args:
        tok: the trained `VQGANTokenizer`.
        tok_dir: the folder to write.
        extra: more fields for `vq.json` (data spec, class names).
    """
    save_model_folder(tok, tok_dir, "vq.json", extra)


def load_tokenizer(path):
    """`(VQGANTokenizer, vq.json dict, abs folder)` of a `train-vq` output folder.

    Args:
        path: the folder, or its `tokenizer/` folder (the `--vq` argument).
    """
    from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer

    return load_model_folder(path, VQGANTokenizer, "tokenizer", "vq.json", "--vq", "train-vq")


def load_vq_maskgit(spec):
    """`(MaskGITImageGenerator, model card dict)` of a VQ MaskGIT preset name or folder.

    Args:
        spec: a preset name (e.g. `vq_maskgit_fashion_mnist`), a preset folder
            or a `train-maskgit-vq` output folder.

    Raises:
        CLIError: `spec` is not a VQ MaskGIT, or a folder's model has no tokenizer.
    """
    import keras_givt
    from keras_givt.utils import preset_utils

    path = spec
    if os.path.isdir(os.path.join(spec, "preset")):
        path = os.path.join(spec, "preset")
    if isinstance(spec, str) and spec in preset_utils.PRESETS:
        entry = preset_utils.PRESETS[spec]
        if entry["class"] != "MaskGITImageGenerator":
            raise CLIError(f"--model {spec!r} is a {entry['class']} preset, not a VQ MaskGIT.")
        model = keras_givt.MaskGITImageGenerator.from_preset(spec)
        card = dict(entry.get("metadata", {}).get("model_card") or {})
        return model, card
    if not os.path.isfile(os.path.join(path, "task.json")):
        raise CLIError(
            f"--model {spec!r}: not a preset name, a preset folder (with task.json) or a "
            "`train-maskgit-vq` output folder."
        )
    model = keras_givt.MaskGITImageGenerator.from_preset(path)
    card = read_model_card(path)
    if model.tokenizer is None:
        raise CLIError(f"--model {spec!r} has no tokenizer: it cannot produce images.")
    return model, card
