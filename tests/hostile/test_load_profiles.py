"""The official suite's load profiles (bench/soak.py), shortened to seconds for CI, against `npo-adapter serve`
over mTLS in its own process: zero errors and no answer mixed up between patients. `make soak` runs them
at full length (180 s, 30 min, 300 s ramp)."""

from __future__ import annotations

import pytest

from bench import soak


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    # basic: 10 threads for 3.6 s; endurance: 0..10 threads swinging every 0.24 s for 7.2 s; recovery: 10 -> 100
    # threads over 6 s, then one ordinary call.
    return soak.soak(["basic", "endurance", "recovery"], time_scale=0.02, folder=tmp_path_factory.mktemp("soak"),
                     scales={"endurance": 0.004})


@pytest.mark.parametrize("name", ["basic", "endurance", "recovery"])
def test_short_load_profile(short_runs, name):
    report = short_runs[name]
    missed = [t for t in report.targets if not t.met]
    assert not missed, (missed, report.notes)
    assert report.figures["calls"]["total"] >= 10


def test_profiles_match_the_official_suite():
    p = soak.profiles()
    assert p["basic"].seconds == 180 and p["basic"].threads(0) == 10 and p["basic"].delay == (0.5, 1.0)
    assert p["endurance"].seconds == 1800
    assert {p["endurance"].threads(t) for t in range(0, 60)} >= {0, 5, 10}
    assert p["recovery"].seconds == 300 and p["recovery"].threads(0) == 10 and p["recovery"].threads(300) == 100
