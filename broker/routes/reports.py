"""Helpdesk reports: KPIs as JSON for the dashboard, and as CSV for spreadsheets (audited, so asked by POST)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from broker.accounts.access import ReportReader
from broker.audit import events as audit
from broker.deps import DB, Source, State
from broker.helpdesk.kpis import report, to_csv
from protocol.kpis import KpiQuery, KpiReport

router = APIRouter(prefix="/reports", tags=["reports"])

Range = Annotated[KpiQuery, Query()]


def _build(db: DB, state: State, query: KpiQuery) -> KpiReport:
    return report(db, query, timedelta(days=state.settings.repeat_window_days))


# Plain ``def`` routes on the request's unit of work: thousands of rows are computed in a worker
# thread (FastAPI runs these there), so the event loop keeps serving signalling.


@router.get("/kpis", response_model=KpiReport, summary="Helpdesk KPIs over whole UTC days, overall, per technician, per team and per day")
def kpis(query: Range, db: DB, state: State, _reader: ReportReader) -> KpiReport:
    return _build(db, state, query)


@router.post(
    "/kpis.csv", summary="The same KPIs as CSV, one row per scope (audited: report.exported)",
    responses={200: {"content": {"text/csv": {}}}},
)
def kpis_csv(query: Range, db: DB, state: State, reader: ReportReader, source: Source) -> Response:
    # A POST: the export is audited, and no other site may have it recorded in the reader's name.
    found = _build(db, state, query)
    audit.record_data(db, "report.exported", {
        "report": "kpis", "format": "csv", "technician": query.technician, "team": query.team,
        "from": query.start.isoformat(), "to": query.end.isoformat(),
    }, actor=audit.user_actor(reader), source=source)
    text = to_csv(found)
    name = f"deskhand-kpis-{query.start.isoformat()}-to-{query.end.isoformat()}.csv"
    return Response(content=text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"})
