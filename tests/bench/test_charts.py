"""The benchmark charts: a PNG drawn from a results JSON (each benchmark's own kind of chart, a soak profile and a
benchmark without a chart of its own), redrawn byte for byte from the same JSON, written by every benchmark's
`Report.finish()` beside its JSON, and committed beside the committed results."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

from PIL import Image

from bench import charts, report

COMMITTED = Path(__file__).resolve().parents[2] / "bench" / "results"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SOAK = {"benchmark": "soak_recovery", "scale": 0.01, "machine": {"cpus": 2, "python": "3.11.7"}, "seconds": 4.2,
        "figures": {"profile": {"seconds": 3.0, "peak_threads": 100, "delay_s": "0.5-1.0"},
                    "calls": {"total": 412, "per_s": 137.3, "p50_ms": 41.0, "p99_ms": 390.5, "max_ms": 512.0},
                    "recovery": {"answered_in_ms": 12.0, "ok": True}},
        "targets": [{"what": "errors", "measured": 0, "limit": 0, "direction": "<=", "met": True}], "notes": []}
OTHER = {"benchmark": "something_new", "scale": 1.0, "machine": {"cpus": 2, "python": "3.11.7"}, "seconds": 1.0,
         "figures": {"x": {"y": 1}},
         "targets": [{"what": "ratio", "measured": 0.4, "limit": 0.8, "direction": ">=", "met": False},
                     {"what": "p99 ms", "measured": 20.0, "limit": 100.0, "direction": "<=", "met": True}],
         "notes": []}


def _valid_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    with Image.open(path) as image:
        image.verify()  # the chunks' checksums and the end chunk
    with Image.open(path) as image:
        image.load()  # the pixels decode
        assert image.size == (width, height)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # a drawing, not a blank canvas
    return width, height


def _samples(tmp: Path) -> list[Path]:
    committed = sorted(COMMITTED.glob("*.json"))
    assert {p.stem for p in committed} >= {"producer_throughput", "large_answers", "ingest_rate", "fanout", "intake"}
    out = [Path(shutil.copy(p, tmp / p.name)) for p in committed]
    for doc in (SOAK, OTHER):
        out.append(tmp / f"{doc['benchmark']}.json")
        out[-1].write_text(json.dumps(doc), encoding="utf-8")
    return out


def test_each_results_json_draws_a_valid_png_beside_it(tmp_path):
    for source in _samples(tmp_path):
        png = charts.draw(source)
        assert png == source.with_suffix(".png")
        width, height = _valid_png(png)
        assert width >= 900 and 400 <= height <= 800, (source.name, width, height)


def test_the_same_json_draws_the_same_png(tmp_path):
    (source,) = [p for p in _samples(tmp_path) if p.stem == "producer_throughput"]
    first = charts.draw(source, tmp_path / "a.png").read_bytes()
    assert charts.draw(source, tmp_path / "b.png").read_bytes() == first


def test_the_command_draws_the_named_results(tmp_path, monkeypatch, capsys):
    _samples(tmp_path)
    monkeypatch.setattr(charts, "RESULTS", tmp_path)
    assert charts.main(["intake", str(tmp_path / "soak_recovery.json")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "intake.png"), str(tmp_path / "soak_recovery.png")]
    _valid_png(tmp_path / "intake.png")
    monkeypatch.setattr(charts, "RESULTS", tmp_path / "empty")
    assert charts.main([]) == 1  # nothing to draw is said, not silently passed


def test_a_benchmark_finishing_writes_its_chart_beside_its_json(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    r = report.Report("intake")
    r.add("writes", count=10, per_s=80.0, p50_ms=83.0, p99_ms=244.1, mean_ms=89.9, errors=0)
    r.add("visible", p50_ms=32.4, p99_ms=66.4, stale_reads=0)
    r.add("concurrent_reads", rps=679.4, p50_ms=14.3, p99_ms=34.8, errors=0)
    r.at_most("p99 ms per write", 244.1, 100.0)
    assert r.finish() == 1
    assert (tmp_path / "intake.json").exists()
    _valid_png(tmp_path / "intake.png")


def test_every_committed_result_has_its_chart():
    """bench/results/*.png are committed beside their JSON (drawn by `python -m bench.charts`)."""
    for source in COMMITTED.glob("*.json"):
        _valid_png(source.with_suffix(".png"))
