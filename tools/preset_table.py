"""Prints the README's table of presets from the preset registry.

    python tools/preset_table.py            # the markdown table
    python tools/preset_table.py --check README.md   # exit 1 if README's copy is stale

The table lists every name `keras_givt` registers (`preset_utils.PRESETS`):
what it is, its size in parameters, the class that loads it and where its
weights come from (a URL, or the package itself for bundled models).
"""

import argparse
import os
import sys

BEGIN = "<!-- preset-table:begin (tools/preset_table.py) -->"
END = "<!-- preset-table:end -->"


def _params(entry):
    params = entry.get("metadata", {}).get("params")
    if not params:
        return "—"
    return f"{params / 1e6:.1f}M" if params >= 1e5 else f"{params / 1e3:.0f}k"


def _source(entry):
    if "path" in entry:
        return "bundled (`keras_givt/models/bundled/`)"
    urls = sorted(set(entry.get("files", {}).values()))
    return "<br>".join(urls) if urls else "—"


def _description(entry):
    text = entry.get("metadata", {}).get("description", "")
    return " ".join(text.split()).replace("|", "\\|")


def table():
    """The markdown table of every registered preset."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras_givt  # noqa: F401  (registers the presets)
    from keras_givt.utils import preset_utils

    rows = [
        "| preset | class | params | what it is | weights from |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(
        preset_utils.PRESETS, key=lambda n: ("path" not in preset_utils.PRESETS[n], n)
    ):
        entry = preset_utils.PRESETS[name]
        rows.append(
            f"| `{name}` | `{entry['class']}` | {_params(entry)} | {_description(entry)} "
            f"| {_source(entry)} |"
        )
    return "\n".join(rows)


def readme_table(path):
    """The table between the markers in `path` (None if the markers are missing)."""
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="README", help="compare with the README's copy")
    args = parser.parse_args(argv)
    current = table()
    if args.check:
        if readme_table(args.check) != current:
            print(
                f"{args.check}: the preset table is stale; regenerate it with "
                "`python tools/preset_table.py`."
            )
            return 1
        print(f"{args.check}: the preset table is current.")
        return 0
    print(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
