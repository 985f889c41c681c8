"""The store knows nothing of the engagement index: the outbox lives in adapter/ei and imports the store, never the
other way round (no import cycle)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import adapter.store
for m in pkgutil.walk_packages(adapter.store.__path__, "adapter.store."):
    importlib.import_module(m.name)
print(" ".join(sorted(m for m in sys.modules if m == "adapter.ei" or m.startswith("adapter.ei."))))
"""


def test_the_store_imports_nothing_of_the_engagement_index():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout

