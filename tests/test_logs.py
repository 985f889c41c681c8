"""One logging set-up (adapter/logs.py) for the commands and stand-ins."""

from __future__ import annotations

import logging

import pytest

from adapter import logs


def test_setup_logs_text_lines_at_the_level_and_refuses_unknown_levels(monkeypatch, capsys):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    logs.setup("DEBUG")
    assert root.level == logging.DEBUG and len(root.handlers) == 1
    logging.getLogger("adapter.test").debug("hello %s", "there")
    line = capsys.readouterr().err.strip()
    assert line.endswith("DEBUG adapter.test hello there")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        logs.setup("loud")


def test_no_module_configures_logging_on_its_own():
    from pathlib import Path

    adapter = Path(logs.__file__).parent
    calls = [p for p in adapter.rglob("*.py")
             if "basicConfig(" in p.read_text(encoding="utf-8") and p.name != "logs.py"]
    assert calls == []
