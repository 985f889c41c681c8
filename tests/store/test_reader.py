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
from adapter.store.reader import RecordReader, StoreUnavailable, _Compiled
from adapter.store.tables import record_days
from adapter.store.tables import records as records_table
from tests.mapping.test_care_documentation import dissent, docref, rich_docref
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


def _page_plan(store, q: records.RecordQuery, after: tuple[str, int] | None) -> str:
    compiled = _Compiled(records.page_statement_for(*records.shape_of(q), after is not None), store)
    parameters = compiled.parameters(records.page_params(q, 500, after))
    parameters = tuple(parameters) if isinstance(parameters, list) else parameters
    with store.begin() as conn:
        if store.dialect.name == "sqlite":
            return "\n".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.sql, parameters))
        # a few test rows make a sort the cheapest plan; without sorts the planner walks an index in page order
        # if one can give it (the order by a subquery per record, as before, could not)
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + compiled.sql, parameters))


def test_a_page_walks_the_page_index_instead_of_sorting_the_patients_records(store, tmp_path):
    from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as GCD3

    _write(store, tmp_path, docref(id="n-1"), docref(id="n-2", date="2024-07-01T10:00:00+02:00"))
    with store.connect() as conn:
        unit = conn.execute(sa.text("SELECT care_unit FROM records")).scalars().first()
    for q in (records.RecordQuery(GCD3.key, SOURCE, PNR, PATIENT_TYPE),
              records.RecordQuery(GCD3.key, SOURCE, PNR, PATIENT_TYPE, care_units=(unit,), period_start="20240101")):
        for after in (None, ("20240601", 10**6)):
            plan = _page_plan(store, q, after)
            assert "ix_records_page" in plan, plan
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_every_record_keeps_its_latest_filter_day(store, tmp_path):
    """`latest_day` (what pages are ordered by) is the latest of the record's days in record_days, "" without any,
    as a batch of intake writes them and when a resource is sent again changed."""
    later = rich_docref()
    later["extension"][1] = dissent("2024-08-01T09:00:00+02:00")

    def check() -> set[str]:
        latest = sa.func.coalesce(sa.select(sa.func.max(record_days.c.day))
                                  .where(record_days.c.record_pk == records_table.c.pk).scalar_subquery(), "")
        with store.connect() as conn:
            found = conn.execute(sa.select(records_table.c.latest_day, latest)).all()
        assert found and all(have == want for have, want in found), found
        return {have for have, _ in found}

    _write(store, tmp_path, rich_docref(), condition("c-1", identifier="d-1"), name="one")
    assert "20240620" in check()
    _write(store, tmp_path, later, name="two")
    assert "20240801" in check()
