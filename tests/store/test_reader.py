"""The producer's read path (adapter/store/reader.py) on both engines: the same answers as the SQLAlchemy query, a
write committed elsewhere is in the very next read on the kept connection, a broken connection is replaced, and a
store that is down is `StoreUnavailable`."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from adapter.ingest import ingest
from adapter.rivta.contracts import GET_DIAGNOSIS
from adapter.store import records
from adapter.store.engine import create_store_engine
from adapter.store.reader import RecordReader, StoreUnavailable
from tests.samples import PNR, SOURCE, bundle, condition, support_bundle

PATIENT_TYPE = "1.2.752.129.2.1.3.1"


def _write(store, tmp_path, *conditions: dict, name: str = "d") -> None:
    resources = [e["resource"] for e in support_bundle()["entry"]]
    (tmp_path / f"{name}.json").write_bytes(orjson.dumps(bundle(*resources, *conditions)))
    assert not ingest(store, [tmp_path / f"{name}.json"]).rejected


def _query(**filters) -> records.RecordQuery:
    return records.RecordQuery(GET_DIAGNOSIS.key, SOURCE, PNR, PATIENT_TYPE, **filters)


def _sqlalchemy(store, q, limit=None, after=None):
    with store.connect() as conn:
        return list(records.query(conn, q)) if limit is None else records.query_page(conn, q, limit, after)


def test_the_same_answers_as_the_sqlalchemy_query(store, tmp_path):
    _write(store, tmp_path, *(condition(f"c-{i}", identifier=f"d-{i}", staff=i % 2,
                                        recorded=f"2024-03-{i + 1:02d}T10:00:00+01:00") for i in range(7)))
    with store.connect() as conn:
        units = sorted(conn.execute(sa.text("SELECT DISTINCT care_unit FROM records")).scalars())
    assert len(units) == 2
    reader = RecordReader(store)
    shapes = [_query(), _query(care_units=(units[0].lower(),)), _query(care_units=tuple(units)),
              _query(hidden_care_units=(units[0],)), _query(period_start="20240303", period_end="20240305"),
              _query(care_givers=("nobody",))]
    for q in shapes:
        assert reader.query(q) == _sqlalchemy(store, q), q
        first = reader.query_page(q, 3)
        assert first == _sqlalchemy(store, q, 3)
        if first:
            after = (first[-1].day, first[-1].pk)
            assert reader.query_page(q, 3, after) == _sqlalchemy(store, q, 3, after)
    assert len(reader.query(_query())) == 7 and len(reader.query(_query(care_units=(units[0],)))) in range(1, 7)


def test_a_write_is_in_the_next_read_on_the_kept_connection(store, tmp_path):
    reader = RecordReader(store)
    assert reader.query(_query()) == []  # the reader's connection is open from here on
    _write(store, tmp_path, condition("c-1", identifier="d-1"), name="one")
    assert len(reader.query(_query())) == 1
    _write(store, tmp_path, condition("c-2", identifier="d-2"), name="two")
    assert len(reader.query(_query())) == 2
    assert len(reader.query_page(_query(), 10)) == 2


def test_a_broken_connection_is_replaced(store, tmp_path, backend):
    _write(store, tmp_path, condition("c-1", identifier="d-1"))
    reader = RecordReader(store)
    assert len(reader.query(_query())) == 1
    if backend == "postgresql":  # as a database restart does to every connection
        pid = reader._local.connection.dbapi_connection.info.backend_pid
        with store.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
    else:
        reader._local.connection.dbapi_connection.close()
    assert len(reader.query(_query())) == 1


def test_a_store_that_is_down_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable, match="OperationalError"):
        RecordReader(create_store_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")).query(_query())
    missing = tmp_path / "gone" / "s.db"
    engine = create_store_engine(f"sqlite:///{missing}")
    missing.unlink()
    missing.parent.rmdir()
    with pytest.raises(StoreUnavailable):
        RecordReader(engine).query(_query())


def test_filter_lists_of_any_length_are_one_statement_and_answer_by_their_values(store, tmp_path):
    """A caller sending ever other numbers of care units must not get a statement (and its compiled SQL) cached per
    number, and 40 000 of them (what fits in a 1 MB request) must neither pass the engine's limit on parameters nor
    read as a store that is down."""
    _write(store, tmp_path, *(condition(f"c-{i}", identifier=f"d-{i}", staff=i % 2) for i in range(4)))
    with store.connect() as conn:
        by_unit = dict(conn.execute(sa.text("SELECT care_unit, count(*) FROM records GROUP BY care_unit")).all())
    (unit, count), (other, _) = sorted(by_unit.items())
    reader = RecordReader(store)
    records.statement_for(*records.shape_of(_query(care_units=(unit,))))  # this shape's statement, made once
    cached = records.statement_for.cache_info().currsize
    for n in (1, 2, 3, 17, 1000, 40_000):
        filler = tuple(f"SE2120001231-X{i}" for i in range(n - 1))
        assert len(reader.query(_query(care_units=(*filler, unit.lower())))) == count
        assert len(reader.query(_query(hidden_care_units=(*filler, unit)))) == 4 - count
        assert not filler or reader.query(_query(care_units=filler)) == []
        assert len(reader.query_page(_query(care_units=(*filler, unit, other)), 2)) == 2
    assert records.statement_for.cache_info().currsize <= cached + 3  # the hidden, empty and paged shapes
