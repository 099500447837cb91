"""CSV exports of the ledger and of usage (credits.exports, workspace.views): streamed, named,
in the organization's days, inclusive date ranges, refused ranges, formula-safe cells, the
organization's own rows only, admins only."""

import csv
import io
import warnings
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from credits import exports
from credits import services as credits
from tests.factories import UserFactory
from tests.usage_history import LOCAL, SEEDREAM, at, move, rival_spending, week_of_history

pytestmark = pytest.mark.django_db

LEDGER = reverse("workspace:export-ledger")
USAGE = reverse("workspace:export-usage")


@pytest.fixture
def history(org, admin_membership, member_membership):
    today = timezone.localdate(timezone=ZoneInfo("Asia/Tokyo"))
    return week_of_history(org, admin_membership, member_membership, today)


def week(history) -> dict:
    return {"since": history.day(6).isoformat(), "until": history.today.isoformat()}


def read(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_ledger_export_is_a_streamed_csv_file_named_for_its_range(admin_client, org, history):
    response = admin_client.get(LEDGER, week(history))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    name = f"{org.slug}-ledger-{history.day(6)}-to-{history.today}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response["Cache-Control"] == "private, no-store"
    assert read(response)[0] == exports.LEDGER_HEADER


def test_the_ledger_export_lists_the_ranges_entries_in_local_time(admin_client, history):
    rows = read(admin_client.get(LEDGER, week(history)))[1:]
    d = {n: history.day(n).isoformat() for n in range(7)}

    assert [(row[0], row[1], row[2], row[5], row[6]) for row in rows] == [
        # G3 held at 00:10 in Tokyo on the range's first day (15:10 UTC the day before).
        (f"{d[6]}T00:10:00+09:00", "hold", "-6", "max@acme.test", SEEDREAM),
        (f"{d[6]}T00:10:20+09:00", "capture", "0", "max@acme.test", SEEDREAM),
        (f"{d[6]}T00:10:20+09:00", "release", "3", "max@acme.test", SEEDREAM),
        (f"{d[5]}T09:00:00+09:00", "topup", "1000", "", ""),
        (f"{d[2]}T23:30:00+09:00", "hold", "-4", "max@acme.test", LOCAL),
        *[(f"{d[1]}T00:30:00+09:00", "capture", "0", "max@acme.test", LOCAL)] * 3,
        (f"{d[1]}T00:30:00+09:00", "release", "1", "max@acme.test", LOCAL),
        (f"{d[0]}T10:00:00+09:00", "hold", "-9", "ada@acme.test", SEEDREAM),
        *[(f"{d[0]}T10:00:40+09:00", "capture", "0", "ada@acme.test", SEEDREAM)] * 3,
        (f"{d[0]}T11:00:00+09:00", "hold", "-2", "kim@acme.test", LOCAL),
    ]
    hold = rows[0]
    assert hold[4] == "6" and len(hold[7]) == 36  # amount; the generation's public id


def test_the_range_is_inclusive_of_both_days_in_the_organizations_zone(admin_client, org, history):
    tokyo, first, last = history.zone, history.day(6), history.today
    for moment, note in [
        (at(tokyo, first, "00:00"), "first moment"),
        (at(tokyo, last, "23:59:59"), "last moment"),
        (at(tokyo, first, "00:00") - timedelta(microseconds=1), "just before"),
        (at(tokyo, last + timedelta(days=1), "00:00"), "just after"),
    ]:
        move(credits.top_up(org=org, amount=1, note=note), moment)

    notes = [row[8] for row in read(admin_client.get(LEDGER, week(history)))[1:]]

    assert notes[0] == "first moment" and notes[-1] == "last moment"
    assert "just before" not in notes and "just after" not in notes


def test_without_dates_the_export_is_the_dashboards_period(admin_client, org, history):
    response = admin_client.get(LEDGER, {"days": 7})

    assert f"-{history.day(6)}-to-{history.today}.csv" in response["Content-Disposition"]
    assert len(read(response)) == 1 + 14


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"since": "2026-03-10", "until": "2026-03-09"}, "The start date must be on or before"),
        ({"since": "2025-03-09", "until": "2026-03-10"}, "Export at most 366 days at a time."),
        ({"since": "2026-02-30", "until": "2026-03-10"}, "Enter a valid date."),
        ({"since": "yesterday"}, "Enter a valid date."),
    ],
)
@pytest.mark.parametrize("url", [LEDGER, USAGE])
def test_an_invalid_range_is_refused_with_the_reason_and_no_data(
    admin_client, admin_membership, url, query, error
):
    response = admin_client.get(url, query)
    body = response.content.decode()

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert error in body
    assert "balance_after" not in body and "credits_spent" not in body


def test_a_year_of_366_days_is_accepted(admin_client, admin_membership):
    response = admin_client.get(LEDGER, {"since": "2027-03-10", "until": "2028-03-09"})

    assert response.status_code == 200
    assert read(response) == [exports.LEDGER_HEADER]


def test_text_a_spreadsheet_would_run_as_a_formula_is_neutralised(admin_client, org, history):
    move(
        credits.top_up(org=org, amount=5, note="@SUM(A1:A9)"),
        at(history.zone, history.today, "01:00"),
    )
    history.kim.user.name = "+Kim"
    history.kim.user.email = "=kim@acme.test"
    history.kim.user.save()

    ledger = read(admin_client.get(LEDGER, week(history)))
    usage = read(admin_client.get(USAGE, week(history)))

    notes = [row[8] for row in ledger[1:] if row[1] == "topup"]
    assert notes == ['\'=HYPERLINK("http://x")', "'@SUM(A1:A9)"]
    assert "'=kim@acme.test" in [row[5] for row in ledger]
    assert ["member", "'=kim@acme.test", "'+Kim"] in [row[:3] for row in usage]
    # Numbers are numbers: a negative change is not text to neutralise.
    assert "-9" in [row[2] for row in ledger]


def test_an_operators_top_up_names_the_platform_not_the_person(admin_client, org, history):
    operator = UserFactory(is_superuser=True, email="ops@nerstudio.test")
    move(
        credits.top_up(org=org, amount=50, actor=operator),
        at(history.zone, history.today, "01:00"),
    )
    rows = read(admin_client.get(LEDGER, week(history)))

    assert [row[5] for row in rows if row[1] == "topup"] == ["", "NER Studio"]
    assert "ops@nerstudio.test" not in str(rows)


def test_the_usage_export_has_a_row_per_member_model_and_day(admin_client, org, history):
    response = admin_client.get(USAGE, week(history))
    rows = read(response)
    d = {n: history.day(n).isoformat() for n in range(7)}

    assert f"{org.slug}-usage-{d[6]}-to-{d[0]}.csv" in response["Content-Disposition"]
    assert rows == [
        exports.USAGE_HEADER,
        ["member", "ada@acme.test", "Ada Admin", "9", "3", "0", "1.0000", "40.0"],
        ["member", "max@acme.test", "Max Member", "6", "4", "2", "0.6667", "1810.0"],
        ["member", "kim@acme.test", "Kim Kuro", "0", "0", "0", "", ""],
        ["model", SEEDREAM, "", "12", "4", "1", "0.8000", "30.0"],
        ["model", LOCAL, "", "3", "3", "1", "0.7500", "3600.0"],
        ["day", d[6], "", "3", "1", "1", "0.5000", "20.0"],
        ["day", d[5], "", "0", "0", "0", "", ""],
        ["day", d[4], "", "0", "0", "0", "", ""],
        ["day", d[3], "", "0", "0", "0", "", ""],
        ["day", d[2], "", "0", "0", "0", "", "3600.0"],
        ["day", d[1], "", "3", "3", "1", "0.7500", ""],
        ["day", d[0], "", "9", "3", "0", "1.0000", "40.0"],
    ]


def test_another_organizations_rows_are_never_exported(
    admin_client, client, org, history, other_admin_membership
):
    rival_spending(other_admin_membership, timezone.localdate())
    since = {"since": history.day(12).isoformat(), "until": history.today.isoformat()}

    ours = str(read(admin_client.get(LEDGER, since))) + str(read(admin_client.get(USAGE, since)))
    client.force_login(other_admin_membership.user)
    theirs = read(client.get(LEDGER, since))

    assert "Rival model" not in ours and "rita@rival.test" not in ours
    assert {row[6] for row in theirs[1:]} == {"Rival model", ""}
    assert "max@acme.test" not in str(theirs)


@pytest.mark.parametrize("url", [LEDGER, USAGE])
def test_members_may_not_export(client, member_membership, url):
    client.force_login(member_membership.user)
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302


def test_a_long_export_is_written_a_chunk_at_a_time(admin_client, history, monkeypatch):
    monkeypatch.setattr(exports, "ROWS_PER_CHUNK", 4)
    response = admin_client.get(LEDGER, week(history))

    chunks = list(response.streaming_content)

    assert len(chunks) == 4  # 15 lines: 4 + 4 + 4 + 3
    assert b"".join(chunks).decode().count("\r\n") == 15


@pytest.mark.django_db(transaction=True)  # the export reads on a thread (and connection) of its own
def test_under_asgi_the_export_streams_a_chunk_at_a_time(admin_membership, history, monkeypatch):
    """Through the ASGI stack (lib.streaming), never read whole into memory first."""
    monkeypatch.setattr(exports, "ROWS_PER_CHUNK", 4)
    client = AsyncClient()
    client.force_login(admin_membership.user)

    async def get():
        response = await client.get(LEDGER, week(history))
        return response, [chunk async for chunk in response.streaming_content]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response, chunks = async_to_sync(get)()

    assert response.is_async
    assert len(chunks) == 4
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == exports.LEDGER_HEADER and len(rows) == 1 + 14


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_exports_own_connection_is_closed_when_it_ends(admin_membership, history):
    """The export reads on a thread of its own; its connection goes back when the body ends, and
    the view's before the body starts (lib.streaming)."""
    from django.db.backends.signals import connection_created

    opened = []

    def remember(sender, connection, **kwargs):
        opened.append(connection)

    connection_created.connect(remember)
    client = AsyncClient()
    client.force_login(admin_membership.user)

    async def get():
        response = await client.get(LEDGER, week(history))
        return b"".join([chunk async for chunk in response.streaming_content])

    try:
        body = async_to_sync(get)()
    finally:
        connection_created.disconnect(remember)

    assert body.decode().count("\r\n") == 1 + 14
    assert opened  # the export's thread opened one of its own
    assert all(wrapper.connection is None for wrapper in opened)
