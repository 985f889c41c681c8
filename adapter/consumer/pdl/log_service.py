"""Access logging (PDL-logg) to the national log service: StoreLog of informationsecurity:auditing:log 2.0.

That domain replaces ehr:log 1.0, which Inera no longer develops: new consumers use it (patient ids are
IITypes, so reserve numbers fit). TKB rules kept here: at most 500 records per call, and every log id is
unique (the service answers VALIDATION_ERROR otherwise). The national logical address is
SE165565594230-1000. The TKB asks loggers to queue records while the service is down: callers catch
`PdlServiceError` and retry later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from lxml import etree

from adapter.consumer.pdl.services import LOG_NS, PERSONNUMMER, STORE_LOG
from adapter.consumer.pdl.soap_call import PdlServiceError, call, require_success, result_code, sub, xml_datetime

MAX_RECORDS_PER_CALL = 500  # TKB informationsecurity:auditing:log, StoreLog rule #2

# Usual values (free strings in version 2; the names of the former ehr:log code lists).
READ = "Läsa"
EMERGENCY_ACCESS = "Nödöppning"
CARE_AND_TREATMENT = "Vård och behandling"


@dataclass(frozen=True)
class LogResource:
    """One accessed resource: the kind of information, the patient, and who owns the information."""

    resource_type: str
    care_provider_id: str
    patient_id: str | None = None
    patient_type: str = PERSONNUMMER
    care_unit_id: str | None = None
    care_provider_name: str | None = None
    care_unit_name: str | None = None


@dataclass(frozen=True)
class AccessLogEntry:
    """One log record: the logging system, the activity, the user (in their assignment) and the resources."""

    log_id: str
    system_id: str
    activity_type: str
    start_time: datetime
    purpose: str
    user_id: str
    user_care_provider_id: str
    user_care_unit_id: str
    resources: tuple[LogResource, ...]
    system_name: str | None = None
    activity_level: str | None = None
    activity_args: str | None = None
    user_name: str | None = None
    user_assignment: str | None = None
    user_title: str | None = None
    user_care_provider_name: str | None = None
    user_care_unit_name: str | None = None


def new_log_id() -> str:
    return str(uuid.uuid4())


async def store_logs(client: httpx.AsyncClient, url: str, logical_address: str,
                     entries: Sequence[AccessLogEntry]) -> None:
    """Store the records, at most 500 per call. On failure the exception's reason says how many of the
    records (from the start of `entries`) were stored before it."""
    for start in range(0, len(entries), MAX_RECORDS_PER_CALL):
        batch = entries[start:start + MAX_RECORDS_PER_CALL]
        try:
            await _store(client, url, logical_address, batch)
        except PdlServiceError as exc:
            if start:
                exc.reason += f"; the first {start} of {len(entries)} records were stored"
            raise


async def _store(client: httpx.AsyncClient, url: str, logical_address: str,
                 batch: Sequence[AccessLogEntry]) -> None:
    svc = STORE_LOG
    req = etree.Element(svc.request_tag, nsmap={"r": svc.responder_ns, "l": LOG_NS})
    for entry in batch:
        add_log(req, svc.responder_ns, entry)
    answer = await call(client, url, svc, logical_address, req)
    result = answer.find(f"{{{svc.responder_ns}}}result")
    require_success(svc, result_code(result, LOG_NS), result, LOG_NS)


def add_log(parent: etree._Element, responder_ns: str, e: AccessLogEntry) -> None:
    n = LOG_NS
    log = sub(parent, responder_ns, "log")
    sub(log, n, "logId", e.log_id)
    system = sub(log, n, "system")
    sub(system, n, "systemId", e.system_id)
    _opt(system, "systemName", e.system_name)
    activity = sub(log, n, "activity")
    sub(activity, n, "activityType", e.activity_type)
    _opt(activity, "activityLevel", e.activity_level)
    _opt(activity, "activityArgs", e.activity_args)
    sub(activity, n, "startDate", xml_datetime(e.start_time))
    sub(activity, n, "purpose", e.purpose)
    user = sub(log, n, "user")
    sub(user, n, "userId", e.user_id)
    _opt(user, "name", e.user_name)
    _opt(user, "assignment", e.user_assignment)
    _opt(user, "title", e.user_title)
    _care_provider(user, e.user_care_provider_id, e.user_care_provider_name)
    _care_unit(user, e.user_care_unit_id, e.user_care_unit_name)
    resources = sub(log, n, "resources")
    for res in e.resources:
        el = sub(resources, n, "resource")
        sub(el, n, "resourceType", res.resource_type)
        if res.patient_id is not None:
            pid = sub(sub(el, n, "patient"), n, "patientId")
            sub(pid, n, "root", res.patient_type)
            sub(pid, n, "extension", res.patient_id)
        _care_provider(el, res.care_provider_id, res.care_provider_name)
        if res.care_unit_id is not None:
            _care_unit(el, res.care_unit_id, res.care_unit_name)


def entry_from_element(log: etree._Element) -> AccessLogEntry:
    """Read a (schema-valid) log element back; used by the log stand-in."""
    n = f"{{{LOG_NS}}}"

    def text(el: etree._Element, path: str) -> str | None:
        found = el.find("/".join(n + step for step in path.split("/")))
        return found.text.strip() if found is not None and found.text is not None else None

    resources = tuple(
        LogResource(
            resource_type=text(r, "resourceType") or "",
            care_provider_id=text(r, "careProvider/careProviderId") or "",
            patient_id=text(r, "patient/patientId/extension"),
            patient_type=text(r, "patient/patientId/root") or PERSONNUMMER,
            care_unit_id=text(r, "careUnit/careUnitId"),
            care_provider_name=text(r, "careProvider/careProviderName"),
            care_unit_name=text(r, "careUnit/careUnitName"),
        )
        for r in log.iterfind(f"{n}resources/{n}resource")
    )
    return AccessLogEntry(
        log_id=text(log, "logId") or "",
        system_id=text(log, "system/systemId") or "",
        system_name=text(log, "system/systemName"),
        activity_type=text(log, "activity/activityType") or "",
        activity_level=text(log, "activity/activityLevel"),
        activity_args=text(log, "activity/activityArgs"),
        start_time=datetime.fromisoformat((text(log, "activity/startDate") or "").replace("Z", "+00:00")),
        purpose=text(log, "activity/purpose") or "",
        user_id=text(log, "user/userId") or "",
        user_name=text(log, "user/name"),
        user_assignment=text(log, "user/assignment"),
        user_title=text(log, "user/title"),
        user_care_provider_id=text(log, "user/careProvider/careProviderId") or "",
        user_care_provider_name=text(log, "user/careProvider/careProviderName"),
        user_care_unit_id=text(log, "user/careUnit/careUnitId") or "",
        user_care_unit_name=text(log, "user/careUnit/careUnitName"),
        resources=resources,
    )


def _opt(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        sub(parent, LOG_NS, name, value)


def _care_provider(parent: etree._Element, hsa_id: str, name: str | None) -> None:
    el = sub(parent, LOG_NS, "careProvider")
    sub(el, LOG_NS, "careProviderId", hsa_id)
    _opt(el, "careProviderName", name)


def _care_unit(parent: etree._Element, hsa_id: str, name: str | None) -> None:
    el = sub(parent, LOG_NS, "careUnit")
    sub(el, LOG_NS, "careUnitId", hsa_id)
    _opt(el, "careUnitName", name)
