"""openapi/ui.json is what the app serves; regenerate it with `python -m adapter.ui.openapi`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from adapter.consumer.fetch import Source
from adapter.consumer.overview import Assignment, ConsumerConfig, NationalServices
from adapter.ui import create_ui_app
from adapter.ui.openapi import DEFAULT_PATH, main, render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "ui.json"
HOW = "openapi/ui.json differs from the app's OpenAPI document: run `python -m adapter.ui.openapi` and commit it"


def some_config() -> ConsumerConfig:
    return ConsumerConfig(sources=(Source("Kommun", "https://127.0.0.1:1", "SE2120001231-SYS1"),),
                          services=NationalServices("https://127.0.0.1:2", "https://127.0.0.1:3",
                                                    "https://127.0.0.1:4"),
                          client_cert=Path("c.pem"), client_key=Path("k.pem"), ca=Path("ca.pem"),
                          assignments=(Assignment("Akuten", "SE2321000016-AKUT", "SE2321000016-RG01"),))


def test_the_committed_document_is_what_the_app_serves():
    served = create_ui_app(some_config(), create_engine("sqlite://")).openapi()
    assert COMMITTED == DEFAULT_PATH
    assert COMMITTED.read_text(encoding="utf-8") == render(served), HOW


def test_the_generator_writes_a_deterministic_document(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main([str(first)]) == 0 and main([str(second)]) == 0
    assert first.read_bytes() == second.read_bytes() == COMMITTED.read_bytes(), HOW


def test_the_document_describes_every_operation_with_tags_summaries_and_error_models():
    doc = create_ui_app(some_config(), create_engine("sqlite://")).openapi()
    ops = {(path, method): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert set(ops) == {("/api/overview", "post"), ("/api/overview/fhir", "post"), ("/api/overview/stream", "post"),
                        ("/api/consent", "post"),
                        ("/api/assignments", "get"), ("/api/audit/verify", "get"), ("/api/session", "get"),
                        ("/auth/logout", "post")}
    for op in ops.values():
        assert op["tags"] and op["summary"] and op["operationId"]
    for key in (("/api/overview", "post"), ("/api/consent", "post")):
        assert ops[key]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorAnswer")
        assert "503" in ops[key]["responses"]
        assert {"401", "403"} <= set(ops[key]["responses"])  # signed in, with the CSRF token, own assignment only
    assert "application/fhir+json" in ops[("/api/overview/fhir", "post")]["responses"]["200"]["content"]
    stream = ops[("/api/overview/stream", "post")]["responses"]
    assert stream["200"]["content"]["application/x-ndjson"]["schema"]["$ref"].endswith("/OverviewAnswer")
    assert {"401", "403", "422", "429"} <= set(stream)
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's default repeats the input
