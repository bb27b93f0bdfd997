"""Reading one fixture config folder: the helpers every parity runner shares.

A config folder (`<fixtures dir>/<config name>/`) holds `config.json`
(optional: `model_kwargs`, `extras`, `param_files`, ...), the params file(s),
`inputs.npz` and `outputs.npz`; its `index.json` entry holds the same fields
(the folder's `config.json` wins).
"""

import json
import os

import numpy as np


def read_json_if_present(cdir, name="config.json"):
    """`cdir/name` parsed, or {} when the file does not exist."""
    path = os.path.join(cdir, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def read_npz_if_present(cdir, name):
    """`{name: array}` of `cdir/name`, or {} when the file does not exist."""
    path = os.path.join(cdir, name)
    return dict(np.load(path)) if os.path.exists(path) else {}


def read_inputs(cdir):
    """`{name: array}` of `cdir/inputs.npz` (which must exist)."""
    return dict(np.load(os.path.join(cdir, "inputs.npz")))


def model_config(cdir, entry):
    """`(model_kwargs, extras, param_files)`: `config.json` first, then the index entry."""
    config = read_json_if_present(cdir)
    model_kwargs = config.get("model_kwargs", entry.get("model_kwargs", {}))
    extras = config.get("extras", entry.get("extras", {}))
    files = config.get("param_files", entry.get("param_files", ["params.npz"]))
    return model_kwargs, extras, files


def merged_config(cdir, entry):
    """The index entry updated with `config.json` (MaskGIT's fixtures nest their configs)."""
    merged = dict(entry)
    merged.update(read_json_if_present(cdir))
    return merged
