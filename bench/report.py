"""What every benchmark prints and writes: figures, ratios against a same-run baseline, and targets.

A benchmark builds a `Report`, adds figures and targets, and ends with `sys.exit(report.finish())`:
the table is printed, bench/results/<name>.json is written (small, stable keys, commit-friendly) with its chart
beside it (<name>.png, bench/charts.py) and the exit status is 1 when any target is missed, so a regression is
visible in `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def scale() -> float:
    """NPO_BENCH_SCALE (0 < s <= 1) shrinks data sets and durations for quick runs; 1 is the issue's size."""
    value = float(os.environ.get("NPO_BENCH_SCALE", "1"))
    if not 0 < value <= 1:
        raise SystemExit("NPO_BENCH_SCALE must be in (0, 1]")
    return value


@dataclass
class Target:
    what: str
    measured: float
    limit: float
    higher_is_better: bool
    note: str = ""

    @property
    def met(self) -> bool:
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit


@dataclass
class Report:
    name: str
    figures: dict[str, dict[str, float | int | str]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, group: str, **values: float | int | str) -> None:
        self.figures.setdefault(group, {}).update({k: _rounded(v) for k, v in values.items()})

    def at_least(self, what: str, measured: float, limit: float, note: str = "") -> None:
        self.targets.append(Target(what, _rounded(measured), limit, True, note))

    def at_most(self, what: str, measured: float, limit: float, note: str = "") -> None:
        self.targets.append(Target(what, _rounded(measured), limit, False, note))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self) -> int:
        print(f"\n== {self.name} ==")
        for group, values in self.figures.items():
            print(f"  {group}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        for t in self.targets:
            sign = ">=" if t.higher_is_better else "<="
            print(f"  [{'ok' if t.met else 'MISSED'}] {t.what}: {t.measured} (target {sign} {t.limit})"
                  + (f"  {t.note}" if t.note else ""))
        for n in self.notes:
            print(f"  note: {n}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        doc = {
            "benchmark": self.name,
            "scale": scale(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "seconds": round(time.time() - self.started, 1),
            "figures": self.figures,
            "targets": [{"what": t.what, "measured": t.measured, "limit": t.limit,
                         "direction": ">=" if t.higher_is_better else "<=", "met": t.met,
                         **({"note": t.note} if t.note else {})} for t in self.targets],
            "notes": self.notes,
        }
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        _chart(path)
        missed = [t for t in self.targets if not t.met]
        print(f"  -> {len(self.targets) - len(missed)}/{len(self.targets)} targets met; "
              f"results in {RESULTS.name}/{self.name}.json", file=sys.stderr if missed else sys.stdout)
        return 1 if missed else 0


def _chart(path: Path) -> None:
    """The benchmark's chart beside its JSON (bench/charts.py; matplotlib comes with the bench extra)."""
    try:
        from bench import charts
    except ImportError as exc:
        print(f"  no chart ({exc.name} is not installed: pip install -e '.[bench]')", file=sys.stderr)
        return
    print(f"  chart in {RESULTS.name}/{charts.draw(path).name}")


def _rounded(v):
    if isinstance(v, float):
        return round(v, 4) if abs(v) < 10 else round(v, 1)
    return v
