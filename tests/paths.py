"""Paths of the repository the tests run in (no imports beyond `os`)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
