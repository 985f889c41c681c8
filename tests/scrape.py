"""Reading the metrics listener as Prometheus does: GET /metrics over HTTP, parsed with prometheus_client's own
parser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port


def scrape(url: str) -> str:
    resp = httpx.get(f"{url}/metrics", timeout=10, trust_env=False)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def label_values(text: str) -> set[str]:
    return {v for family in text_string_to_metric_families(text) for s in family.samples for v in s.labels.values()}


@contextmanager
def listener(readiness, *collectors) -> Iterator[str]:
    """The metrics listener (adapter/ops.py) on a free loopback port; yields its URL."""
    from adapter import ops

    running = ops.start("127.0.0.1", free_port(), readiness, *collectors)
    try:
        yield running.url
    finally:
        running.stop()
