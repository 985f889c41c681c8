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


def test_json_format_one_object_per_line_with_the_bound_fields_and_the_correlation_id(monkeypatch, capsys):
    import orjson

    from adapter import correlation

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    monkeypatch.setenv("NPO_LOG_FORMAT", "json")  # the variable alone chooses the format
    logs.setup("info")
    with logs.fields_scope(), correlation.scope("corr-1"):
        logs.bind(contract="GetDiagnosis:2", consumer="SE165565594230-1000")
        logs.bind(log_id="6f1c0e52-7d2a-4c43-9a0e-1b5b7c0a9d11")
        logging.getLogger("adapter.test").info("answered %d records\nsecond line", 2)
    logging.getLogger("adapter.test").warning("outside")
    first, second = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert first == {"time": first["time"], "level": "info", "logger": "adapter.test",
                     "event": "answered 2 records\nsecond line", "log_id": "6f1c0e52-7d2a-4c43-9a0e-1b5b7c0a9d11",
                     "contract": "GetDiagnosis:2", "consumer": "SE165565594230-1000", "correlation_id": "corr-1"}
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "warning" and second["contract"] is None and second["correlation_id"] is None
    with pytest.raises(ValueError, match="unknown log field"):
        logs.bind(patient="191212121212")
    monkeypatch.setenv("NPO_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        logs.log_format()


def test_an_unknown_log_format_is_refused_by_the_commands():
    from typer.testing import CliRunner

    from adapter.cli import app

    result = CliRunner().invoke(app, ["serve", "--log-format", "xml", "--plain-http"])
    assert result.exit_code == 2 and "unknown log format" in result.output


def test_each_request_gets_its_correlation_id_echoed_and_never_one_that_could_hold_a_personnummer():
    """The producer's middleware (adapter/logs.RequestContext), on a bare ASGI app: the caller's id is kept and
    echoed, a missing one is made, one that could hold a personnummer is replaced; fields never leak between
    requests."""
    import uuid

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from adapter import correlation
    from tests.conftest import RunningServer, free_port

    def seen(request):
        before = dict(logs.bound())
        logs.bind(contract="GetDiagnosis:2")
        return JSONResponse({"id": correlation.current(), "bound_before": before})

    app = logs.RequestContext(Starlette(routes=[Route("/", seen)]))
    with RunningServer(app, free_port()) as srv, httpx.Client(base_url=srv.url, trust_env=False) as c:
        kept = c.get("/", headers={correlation.HEADER: "0b7e9a4e-6f0d-4a39-9a7e-3c1f6f1a2b10"})
        assert kept.json()["id"] == kept.headers[correlation.HEADER] == "0b7e9a4e-6f0d-4a39-9a7e-3c1f6f1a2b10"
        made = c.get("/")
        assert made.json()["id"] == made.headers[correlation.HEADER]
        assert str(uuid.UUID(made.json()["id"])) == made.json()["id"] and made.json()["bound_before"] == {}
        for smuggled in ("191212121212", "19121212-1212", "x" * 101, "a b"):
            replaced = c.get("/", headers={correlation.HEADER: smuggled})
            assert replaced.headers[correlation.HEADER] != smuggled
            assert str(uuid.UUID(replaced.json()["id"])) == replaced.json()["id"]
