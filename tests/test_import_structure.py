"""The import structure: conversion is one way, the parity harness lives in tools/.

- `import keras_givt` imports no module of `keras_givt.conversion` (the
  converters load when a published preset is first converted);
- the modelling packages (models, layers, mixture, samplers) never import
  `keras_givt.conversion` or `keras_givt.cli`, not even inside a function;
  outside conversion/ and cli/ nothing in the package imports conversion
  (the preset registry names its converter by a string), so conversion sits
  on no import circle;
- the fixture runners (`tools/parity/`) are not part of the package.
"""

import ast
import os
import re
import subprocess
import sys

import pytest

from tests.paths import ROOT

PACKAGE = os.path.join(ROOT, "keras_givt")
MODELLING = ("models", "layers", "mixture", "samplers")
# A module path in a string constant, e.g. "keras_givt.conversion.registry:build_preset".
MODULE_STRING = re.compile(r"^keras_givt\.(conversion|cli)(\.\w+)*(:\w+)?$")


def _python_files(folder):
    for dirpath, _, filenames in os.walk(folder):
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                yield os.path.join(dirpath, filename)


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel)


def _imported_modules(path, strings=True):
    """`(line, module)` of every import in `path` (any depth; relative ones resolved),
    and (`strings=True`) of every string constant that names a conversion/cli module."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    package = _module_name(path)
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
            if MODULE_STRING.match(node.value):
                found.append((node.lineno, node.value.partition(":")[0]))
    return found


def _imports_of(path, prefixes, strings=True):
    return [
        f"{os.path.relpath(path, ROOT)}:{line} imports {module}"
        for line, module in _imported_modules(path, strings)
        if any(module == p or module.startswith(p + ".") for p in prefixes)
    ]


def test_import_keras_givt_imports_no_conversion_module():
    code = (
        "import sys, keras_givt\n"
        "from keras_givt.utils import preset_utils\n"
        "assert len(preset_utils.PRESETS) >= 18, len(preset_utils.PRESETS)\n"
        "print(sorted(m for m in sys.modules if m.startswith('keras_givt.conversion')))"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("KERAS_GIVT_LAZY_IMPORT", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


@pytest.mark.parametrize("subpackage", MODELLING)
def test_modelling_packages_never_import_conversion_or_cli(subpackage):
    problems = []
    for path in _python_files(os.path.join(PACKAGE, subpackage)):
        problems += _imports_of(path, ("keras_givt.conversion", "keras_givt.cli"))
    assert not problems, "\n".join(problems)


def test_only_cli_imports_conversion():
    """Nothing below conversion/ in the layering imports it: it sits on no import circle.

    (The preset registry names its converter by a "module:function" string,
    `preset_utils.PUBLISHED_BUILDER`, imported only when a preset is converted.)
    """
    problems = []
    for path in _python_files(PACKAGE):
        rel = os.path.relpath(path, PACKAGE).split(os.sep)
        if rel[0] in ("conversion", "cli"):
            continue
        problems += _imports_of(path, ("keras_givt.conversion",), strings=False)
    for path in _python_files(os.path.join(PACKAGE, "conversion")):
        problems += _imports_of(path, ("keras_givt.cli",))
    assert not problems, "\n".join(problems)


def _runner_names():
    names = set()
    for path in _python_files(os.path.join(ROOT, "tools", "parity")):
        with open(path) as f:
            tree = ast.parse(f.read())
        names |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("run_")
        }
    return names


def test_no_fixture_runner_in_the_package():
    runners = _runner_names()
    assert {"run_config", "run_givt", "run_vae", "run_vqgan"} <= runners, runners
    problems = []
    for path in _python_files(PACKAGE):
        if os.path.basename(path).startswith("fixtures"):
            problems.append(f"{os.path.relpath(path, ROOT)}: a fixture harness module")
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in runners:
                problems.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} defines {node.name}")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "RUNNERS" for t in node.targets
            ):
                problems.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} defines RUNNERS")
        problems += _imports_of(path, ("tools",))
    assert not problems, "\n".join(problems)


def test_parity_runner_table_covers_every_fixture_kind():
    import json

    from tools import parity

    kinds = set()
    for name in ("big_vision", "big_vision_uvim", "maskgit"):
        with open(os.path.join(ROOT, "tests", "fixtures", name, "index.json")) as f:
            kinds |= {entry.get("kind") for entry in json.load(f)["configs"].values()}
    assert kinds <= set(parity.RUNNERS), sorted(kinds - set(parity.RUNNERS))
