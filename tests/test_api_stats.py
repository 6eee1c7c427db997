"""Statistics (综合考评) from cases with known timestamps: rates, medians, p90, CSV, scope."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from api.orm import Case, Dispatch, Unit
from tests.api_fixtures import Api

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def add_case(
    session, centre_id: int, camera: str, *, state: str, ack=None, dispatch=None, close=None, day=0
):  # type: ignore[no-untyped-def]
    created = T0 + timedelta(days=day)

    def at(seconds):  # type: ignore[no-untyped-def]
        return None if seconds is None else created + timedelta(seconds=seconds)

    case = Case(
        origin="alert",
        title=f"{camera} {state}",
        state=state,
        severity="warning",
        camera_id=camera,
        camera_name=camera,
        centre_id=centre_id,
        routed_centre_id=centre_id,
        created_at=created,
        updated_at=created,
        acknowledged_at=at(ack),
        dispatched_at=at(dispatch),
        closed_at=at(close),
        dismissed_at=at(ack) if state == "dismissed" else None,
    )
    session.add(case)
    session.flush()
    return case


def test_rates_times_and_csv(sqlite_api: Api) -> None:
    api = sqlite_api
    harbour, market, hillside = (
        api.centre("demo.riverside.harbour"),
        api.centre("demo.riverside.market"),
        api.centre("demo.hillside"),
    )
    with api.app.state.sessions() as session:
        police = session.scalar(select(Unit).where(Unit.name == "Riverside police station"))
        # Harbour: three real cases closed (ack 10/20/30 s, close 100/200/300 s), one false alarm.
        for i, seconds in enumerate((10, 20, 30)):
            case = add_case(
                session,
                harbour,
                "cam-a",
                state="closed",
                ack=seconds,
                dispatch=seconds * 2,
                close=seconds * 10,
                day=i,
            )
            session.add(
                Dispatch(
                    case_id=case.id,
                    unit_id=police.id,
                    dispatched_by="t",
                    dispatched_at=case.dispatched_at,
                )
            )
        add_case(session, harbour, "cam-a", state="dismissed", ack=5)
        # Market: one untouched case; Hillside: one (outside Riverside's scope).
        add_case(session, market, "cam-b", state="reported")
        add_case(session, hillside, "cam-c", state="acknowledged", ack=40)
        session.commit()

    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-10T00:00:00Z"}
    rows = {
        r["name"]: r
        for r in api.get("operator", "/stats", params={**window, "group_by": "centre"}).json()[
            "rows"
        ]
    }
    assert set(rows) == {
        "Demo District / Riverside Street",
        "Demo District / Riverside Street / Harbour Community",
        "Demo District / Riverside Street / Market Community",
    }, "an operator of Riverside sees Riverside's centres only"
    harbour_row = rows["Demo District / Riverside Street / Harbour Community"]
    assert harbour_row["cases"] == 4 and harbour_row["handled"] == 4
    assert harbour_row["handling_rate"] == 1.0
    assert harbour_row["closure_rate"] == 1.0  # 3 closed of 3 real cases
    assert harbour_row["false_alarm_rate"] == 0.25
    assert harbour_row["time_to_acknowledge_median_s"] == 15.0  # 5, 10, 20, 30
    assert harbour_row["time_to_close_median_s"] == 200.0
    assert harbour_row["time_to_close_p90_s"] == 280.0  # linear between 200 and 300
    street = rows["Demo District / Riverside Street"]
    assert street["cases"] == 5 and street["handling_rate"] == 0.8 and street["open"] == 1
    assert street["closure_rate"] == 0.75

    district = api.get("admin", "/stats", params={**window, "group_by": "centre"}).json()["rows"]
    assert next(r for r in district if r["name"] == "Demo District")["cases"] == 6

    cameras = {
        r["key"]: r
        for r in api.get("operator", "/stats", params={**window, "group_by": "camera"}).json()[
            "rows"
        ]
    }
    assert (
        cameras["cam-a"]["false_alarm_rate"] == 0.25 and cameras["cam-b"]["false_alarm_rate"] == 0.0
    )
    assert "cam-c" not in cameras
    units = api.get("operator", "/stats", params={**window, "group_by": "unit"}).json()["rows"]
    assert [(u["name"], u["cases"], u["time_to_dispatch_median_s"]) for u in units] == [
        ("Riverside police station", 3, 40.0)
    ]
    days = api.get(
        "operator", "/stats", params={**window, "group_by": "period", "period": "day"}
    ).json()["rows"]
    assert [(d["key"], d["cases"]) for d in days] == [
        ("2026-11-02", 3),
        ("2026-11-03", 1),
        ("2026-11-04", 1),
    ]

    exported = api.get("operator", "/stats.csv", params={**window, "group_by": "camera"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["key"] for r in table] == ["cam-a", "cam-b"]
    assert table[0]["false_alarm_rate"] == "0.25" and table[1]["time_to_close_median_s"] == ""

    backwards = api.get(
        "operator",
        "/stats",
        params={"since": "2026-11-10T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
    )
    assert backwards.status_code == 422 and "must be before" in backwards.json()["detail"]
    naive = api.get("operator", "/stats", params={"since": "2026-11-01T00:00:00"})
    assert naive.status_code == 422
    assert api.get("integrator", "/stats").status_code == 403
