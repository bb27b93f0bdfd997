"""Checks keras.io tutobook guides (`guides/*.py`) against the keras-io rules.

Usage: python tools/validate_guides.py [FILE_OR_DIR ...]   (default: guides/)

Checks, after keras-io `scripts/tutobooks.py`:
- header: line 0 is a triple quote, then `Title:`, `Author:`/`Authors:`, `Date created:
  yyyy/mm/dd`, `Last modified: yyyy/mm/dd`, `Description:` (capitalized, ends with
  ".", under 100 characters), optionally `Accelerator:`, then a triple quote;
- every triple-quoted text cell opens and closes on a line of its own (no one-line fences);
- no trailing whitespace; at most MAX_LOC lines of code (non-blank lines outside
  text cells);
- black-formatted (`black --check`; skipped with a notice when black is not
  installed);
- no links to arxiv.org/pdf (link the abstract page).

Prints one line per problem (`path:line: message`) and exits 1 if there is any.
"""

import os
import re
import subprocess
import sys

MAX_LOC = 300
FENCE = '"""'
DATE_RE = re.compile(r"^\d{4}/(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])$")
HEADER_FIELDS = (
    ("Title", ("Title",)),
    ("Author", ("Author", "Authors")),
    ("Date created", ("Date created",)),
    ("Last modified", ("Last modified",)),
    ("Description", ("Description",)),
)
OPTIONAL_FIELDS = ("Accelerator",)


def _check_header(lines, problems):
    if not lines or lines[0] != FENCE:
        problems.append((1, 'the file must start with a line holding only """'))
        return 1
    i = 1
    for expected, accepted in HEADER_FIELDS:
        line = lines[i] if i < len(lines) else ""
        key, sep, value = line.partition(": ")
        if not sep or key not in accepted:
            problems.append((i + 1, f"header line {i + 1} must be `{expected}: ...`"))
        elif not value.strip():
            problems.append((i + 1, f"header field `{key}` is empty"))
        elif expected in ("Date created", "Last modified") and not DATE_RE.match(value):
            problems.append((i + 1, f"`{key}` must be a yyyy/mm/dd date; got {value!r}"))
        elif expected == "Description":
            if not value[0].isupper():
                problems.append((i + 1, "the description must be capitalized"))
            if not value.endswith("."):
                problems.append((i + 1, "the description must end with a period"))
            if len(value) >= 100:
                problems.append(
                    (
                        i + 1,
                        f"the description must be under 100 characters ({len(value)})",
                    )
                )
        i += 1
    while i < len(lines) and lines[i].partition(": ")[0] in OPTIONAL_FIELDS:
        i += 1
    if i >= len(lines) or lines[i] != FENCE:
        problems.append((i + 1, 'the header must end with a line holding only """'))
    return i + 1


def _check_cells(lines, start, problems):
    """Text-cell fences and lines of code after the header; returns the LOC count."""
    in_text = False
    opened_at = None
    loc = 0
    for i in range(start, len(lines)):
        line = lines[i]
        stripped = line.strip()
        if in_text:
            if FENCE in line:
                if stripped != FENCE:
                    problems.append((i + 1, 'close text cells with """ on a line of its own'))
                in_text = False
            continue
        if stripped.startswith(FENCE):
            rest = stripped[len(FENCE) :]
            if line != stripped:
                # An indented docstring inside code, not a text cell.
                loc += 1
                continue
            if FENCE in rest:
                problems.append((i + 1, 'one-line """ text cells are not allowed'))
                continue
            if rest not in ("", "shell", "invisible"):
                problems.append((i + 1, 'open text cells with """ on a line of its own'))
            in_text = True
            opened_at = i + 1
            continue
        if stripped:
            loc += 1
    if in_text:
        problems.append((opened_at, "text cell is never closed"))
    return loc


def _black_problems(path):
    try:
        import black  # noqa: F401
    except ImportError:
        return None
    result = subprocess.run(
        [sys.executable, "-m", "black", "--check", "--quiet", path],
        capture_output=True,
        text=True,
    )
    return result.returncode != 0


def validate_file(path, check_black=True):
    """Problems of one guide: a list of `(line, message)`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    problems = []
    start = _check_header(lines, problems)
    loc = _check_cells(lines, start, problems)
    if loc > MAX_LOC:
        problems.append((1, f"{loc} lines of code; the limit is {MAX_LOC}"))
    for i, line in enumerate(lines):
        if line != line.rstrip():
            problems.append((i + 1, "trailing whitespace"))
        if "arxiv.org/pdf" in line:
            problems.append((i + 1, "link arxiv abstract pages (arxiv.org/abs/...), not PDFs"))
    if check_black:
        unformatted = _black_problems(path)
        if unformatted is None:
            print(
                "note: black is not installed; skipping the formatting check",
                file=sys.stderr,
            )
        elif unformatted:
            problems.append((1, "not black-formatted (run `black` on the file)"))
    return sorted(problems)


def collect(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, n) for n in os.listdir(p) if n.endswith(".py"))
        else:
            files.append(p)
    return files


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = collect(argv or [os.path.join(root, "guides")])
    if not files:
        print("no guides found", file=sys.stderr)
        return 1
    count = 0
    for path in files:
        for line, message in validate_file(path):
            print(f"{path}:{line}: {message}")
            count += 1
    if count:
        print(f"{count} problem(s) in {len(files)} guide(s)", file=sys.stderr)
        return 1
    print(f"{len(files)} guide(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
