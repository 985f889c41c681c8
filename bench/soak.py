"""The load profiles of the official certification suite (test cases 6.1.1, 6.1.2 and 6.2.1), against
`npo-adapter serve` over mTLS with the bundled demo municipality:

* basic (6.1.1): 10 threads, a delay of 0.5-1 s between calls (delay 1000 ms, random 0.5), 180 s;
* endurance (6.1.2): 5 threads varied from 0 to 10 and back every 60 s (variance 1.0), 1800 s;
* recovery (6.2.1): threads ramped from 10 to 100 over 300 s without delay, then one ordinary call must be
  answered promptly (the system recovered).

Every thread keeps its own keep-alive mTLS connection and asks for a random patient and contract; every
answer is checked against that patient's known document ids (taken once before the load): zero errors
and no answer mixed up between patients, or the run fails. Results in bench/results/soak_<profile>.json.

`python -m bench.soak [basic|endurance|recovery|all] [--time-scale F]` (`make soak` runs all at full length).
"""

from __future__ import annotations

import argparse
import http.client
import math
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from adapter.demo.generate import generate
from adapter.demo.world import default_world
from adapter.ingest import ingest
from adapter.rivta.contracts import CONTRACTS, SOAP_NS, Contract
from adapter.rivta.request_builder import build_request
from adapter.rivta.rules import first_text
from adapter.store.engine import open_store
from bench.report import Report
from bench.servers import client_context, dev_pki, free_port, real_server

WORLD = default_world()


@dataclass(frozen=True)
class Profile:
    name: str
    seconds: float
    threads: Callable[[float], int]  # active threads at t seconds (0 <= t <= seconds)
    delay: tuple[float, float] = (0.0, 0.0)  # pause between a thread's calls, uniform in [low, high]
    recovery_check: bool = False


def profiles(time_scale: float = 1.0) -> dict[str, Profile]:
    s = time_scale
    interval = 60 * s
    return {
        "basic": Profile("basic", 180 * s, lambda t: 10, delay=(0.5, 1.0)),
        # SoapUI's variance strategy: the thread count swings between threads*(1-variance) and
        # threads*(1+variance) once per interval.
        "endurance": Profile("endurance", 1800 * s,
                             lambda t: round(5 + 5 * math.sin(2 * math.pi * t / interval))),
        "recovery": Profile("recovery", 300 * s, lambda t: 10 + round(90 * min(1.0, t / (300 * s))),
                            recovery_check=True),
    }


@dataclass
class Tally:
    calls: int = 0
    errors: int = 0
    mixed: int = 0
    latencies: list[float] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    peak_threads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, problem: str | None, mixed: bool = False) -> None:
        with self.lock:
            self.calls += 1
            self.latencies.append(seconds)
            if problem:
                self.errors += 1
                self.reasons[problem] = self.reasons.get(problem, 0) + 1
            if mixed:
                self.mixed += 1


class Caller:
    """One keep-alive mTLS connection, as one SoapUI thread."""

    def __init__(self, port: int, ctx) -> None:
        self.port, self.ctx = port, ctx
        self.conn: http.client.HTTPSConnection | None = None

    def call(self, contract: Contract, patient: str) -> tuple[int, bytes]:
        body = build_request(contract, WORLD.source_system, patient)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{contract.soap_action}"'}
        for attempt in (1, 2):  # a keep-alive connection the server closed while idle is reopened once
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
            try:
                self.conn.request("POST", contract.url_path, body, headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def document_ids(answer: bytes, contract: Contract) -> tuple[list[str], set[str]]:
    root = etree.fromstring(answer)
    resp = root.find(f"{{{SOAP_NS}}}Body/{{{contract.responder_ns}}}{contract.response_element}")
    if resp is None:
        raise ValueError("not an answer")
    recs = resp.findall(f"{{{contract.responder_ns}}}{contract.record_element}")
    paths = contract.paths  # where ids live is the contract's header model
    ids = [first_text(r, contract, paths.document_id) or "" for r in recs]
    patients = {first_text(r, contract, paths.patient_id) or "" for r in recs}
    return ids, patients


def expected_answers(port: int, ctx) -> dict[tuple[str, str], list[str]]:
    caller = Caller(port, ctx)
    out = {}
    for c in CONTRACTS:
        for p in WORLD.patients:
            status, body = caller.call(c, p.number)
            assert status == 200, f"{c.name} for a demo patient answered {status}"
            out[(c.key, p.number)] = document_ids(body, c)[0]
    caller.close()
    return out


def check(status: int, body: bytes, contract: Contract, patient: str, expected: list[str]) -> tuple[str | None, bool]:
    if status != 200:
        return f"HTTP {status}", False
    try:
        ids, patients = document_ids(body, contract)
    except (etree.XMLSyntaxError, ValueError):
        return "unreadable answer", False
    if patients - {patient} or (ids and patients != {patient}):
        return "records of another patient", True
    if sorted(ids) != sorted(expected):
        return "wrong records", True
    return None, False


def run_profile(profile: Profile, port: int, ctx, expected: dict, seed: int = 8) -> Tally:
    tally = Tally()
    start = time.monotonic()
    stop = start + profile.seconds
    max_threads = max(profile.threads(t) for t in [profile.seconds * i / 100 for i in range(101)])

    def worker(index: int) -> None:
        rng = random.Random(seed + index)
        caller = Caller(port, ctx)
        try:
            while (now := time.monotonic()) < stop:
                if index >= profile.threads(now - start):
                    caller.close()
                    time.sleep(0.05)
                    continue
                contract, patient = rng.choice(CONTRACTS), rng.choice(WORLD.patients).number
                t = time.monotonic()
                try:
                    status, body = caller.call(contract, patient)
                    problem, mixed = check(status, body, contract, patient, expected[(contract.key, patient)])
                except (OSError, http.client.HTTPException) as exc:
                    problem, mixed = f"connection: {type(exc).__name__}", False
                    caller.close()
                tally.record(time.monotonic() - t, problem, mixed)
                low, high = profile.delay
                if high:
                    time.sleep(min(rng.uniform(low, high), max(0.0, stop - time.monotonic())))
        finally:
            caller.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(max_threads)]
    for th in threads:
        th.start()
    while time.monotonic() < stop:
        active = profile.threads(time.monotonic() - start)
        tally.peak_threads = max(tally.peak_threads, active)
        time.sleep(0.1)
    for th in threads:
        th.join(timeout=60)
    return tally


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def soak(names: list[str], time_scale: float = 1.0, folder: Path | None = None,
         scales: dict[str, float] | None = None) -> dict[str, Report]:
    """Run the named profiles against a fresh server; returns one report per profile (not yet finished).
    `scales` overrides `time_scale` per profile."""
    reports = {}
    with tempfile.TemporaryDirectory(prefix="npo-soak-") as tmp:
        folder = folder or Path(tmp)
        pki = dev_pki(folder / "pki")
        generate(folder / "demo")
        url = f"sqlite:///{folder}/store.db"
        assert not ingest(open_store(url), [folder / "demo"]).rejected
        ctx = client_context(pki)
        with real_server(url, pki, free_port(), folder / "server.log", log_level="warning") as srv:
            expected = expected_answers(srv.port, ctx)
            for name in names:
                profile = profiles((scales or {}).get(name, time_scale))[name]
                tally = run_profile(profile, srv.port, ctx, expected)
                report = Report(f"soak_{name}")
                report.add("profile", seconds=profile.seconds, peak_threads=tally.peak_threads,
                           delay_s=f"{profile.delay[0]}-{profile.delay[1]}")
                report.add("calls", total=tally.calls, per_s=tally.calls / profile.seconds,
                           p50_ms=percentile(tally.latencies, 50) * 1000,
                           p99_ms=percentile(tally.latencies, 99) * 1000,
                           max_ms=max(tally.latencies, default=0) * 1000)
                report.at_most("errors", tally.errors, 0)
                report.at_most("answers mixed up between patients", tally.mixed, 0)
                report.at_least("calls made", tally.calls, 1)
                for reason, n in tally.reasons.items():
                    report.note(f"{n} x {reason}")
                if profile.recovery_check:
                    caller = Caller(srv.port, ctx)
                    patient = WORLD.patients[0].number
                    t = time.monotonic()
                    status, body = caller.call(CONTRACTS[0], patient)
                    after = time.monotonic() - t
                    caller.close()
                    problem, _ = check(status, body, CONTRACTS[0], patient, expected[(CONTRACTS[0].key, patient)])
                    report.add("recovery", answered_in_ms=after * 1000, ok=problem is None)
                    report.at_most("ordinary call after the ramp (s)", after if problem is None else 1e9, 1.0)
                reports[name] = report
    return reports


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("profile", nargs="?", default="all", choices=["basic", "endurance", "recovery", "all"])
    p.add_argument("--time-scale", type=float, default=1.0, help="shorten every profile (0.01: 1.8 s basic)")
    a = p.parse_args()
    names = ["basic", "endurance", "recovery"] if a.profile == "all" else [a.profile]
    reports = soak(names, a.time_scale)
    return max(r.finish() for r in reports.values())


if __name__ == "__main__":
    sys.exit(main())
