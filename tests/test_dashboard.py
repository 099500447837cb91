"""The dashboard and the members page as an admin reads them: the period selector, the PRD §8
metrics beside the previous period, the breakdowns and the ledger lines, checked against the
hand-computed week of tests/usage_history.py; who may see them; and queries that stay the same
however long the history grows."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credits import services as credits
from tests.factories import MembershipFactory
from tests.usage_history import LOCAL, generation, rival_spending, week_of_history
from workspace.templatetags.dashboard import metric as shown_as

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("workspace:dashboard")
MEMBERS = reverse("workspace:members")


@pytest.fixture
def history(org, admin_membership, member_membership):
    today = timezone.localdate(timezone=ZoneInfo("Asia/Tokyo"))
    return week_of_history(org, admin_membership, member_membership, today)


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def metric(body: str, key: str) -> str:
    found = re.search(rf'<div class="metric" id="metric-{key}">(.*?)</div>', body, re.S)
    assert found, key
    return text(found.group(1))


def table_rows(body: str, heading: str) -> list[list[str]]:
    """The rows of the breakdown table under <h6>heading</h6>, as cell texts."""
    section = body.split(f"<h6>{heading}</h6>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1], re.S)
    return [[text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_the_dashboard_shows_the_weeks_metrics_beside_the_previous_week(admin_client, history):
    body = admin_client.get(DASHBOARD, {"days": 7}).content.decode()

    assert metric(body, "credits").startswith("Credits spent 15 previous 7 days: 15 no change")
    assert "Images delivered 7 previous 7 days: 5 ▲ +40%" in metric(body, "images")
    assert "77.8% previous 7 days: 71.4% ▲ +6.3 pts" in metric(body, "success_rate")
    assert "20 min 20 s previous 7 days: 45 s ▲ +2611.1%" in metric(body, "generation_time")
    assert "members 3 previous 7 days: 2 ▲ +50%" in metric(body, "active_members")
    assert "week 5 previous 7 days: 7.5 ▼ −33.3%" in metric(body, "credits_per_member_week")
    assert "15 credits on 7 images" in text(body)


def test_the_dashboard_breaks_the_week_down_by_member_and_by_model(admin_client, history):
    body = admin_client.get(DASHBOARD, {"days": 7}).content.decode()

    assert table_rows(body, "By member") == [
        ["Ada Admin", "9", "3", "100%", "40 s"],
        ["Max Member", "6", "4", "66.7%", "30 min 10 s"],
        ["Kim Kuro", "0", "0", "—", "—"],
    ]
    assert table_rows(body, "By model") == [
        ["Seedream 4.5 Edit", "12", "4", "80%", "30 s"],
        [LOCAL, "3", "3", "75%", "1 h 0 min"],
    ]


def test_the_chart_has_a_column_per_day_titled_with_its_figures(admin_client, history):
    body = admin_client.get(DASHBOARD, {"days": 7}).content.decode()
    titles = re.findall(r'<g class="usage-day"><title>(.*?)</title>', body)

    assert len(titles) == 7
    assert titles[0].endswith(": 3 credits, 1 image")
    assert titles[-1].endswith(": 9 credits, 3 images")
    assert titles[-2].endswith(": 3 credits, 3 images")
    assert body.count('class="usage-bar-svg"') == 3  # days without spending have no bar
    # Seven dates under the bars, every other one hidden on a phone: today always shows.
    dates = re.findall(r'<text( class="usage-date-minor")? x="[^"]*" y="[^"]*" text-anchor', body)
    assert [minor == "" for minor in dates] == [True, False, True, False, True, False, True]


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (593.97, "credits", "594"),
        (7.5, "credits", "7.5"),
        (1204, "count", "1,204"),
        (None, "credits", "—"),
        (0.9175, "percent", "91.8%"),
        (0.99999, "percent", "100%"),
        (4.26, "seconds", "4.3 s"),
        (84.4, "seconds", "1 min 24 s"),
        (3725, "seconds", "1 h 2 min"),
    ],
)
def test_figures_are_shown_rounded_for_people(value, unit, shown):
    assert shown_as(value, unit) == shown


@pytest.mark.parametrize(
    ("query", "days"),
    [
        ({"days": "7"}, 7),
        ({"days": "30"}, 30),
        ({"days": "90"}, 90),
        ({}, 30),
        ({"days": "14"}, 30),
        ({"days": "-7"}, 30),
        ({"days": "<b>90</b>"}, 30),
        ({"days": "9" * 40}, 30),
    ],
)
def test_the_period_selector_offers_7_30_and_90_days_and_ignores_anything_else(
    admin_client, org, admin_membership, query, days
):
    response = admin_client.get(DASHBOARD, query)
    body = response.content.decode()

    assert response.status_code == 200
    assert f"Usage, last {days} days" in body
    assert body.count('class="usage-day"') == days
    picker = body.split('<nav class="period-picker"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="\?days=(\d+)"', picker) == ["7", "30", "90"]
    assert re.findall(r'href="\?days=(\d+)" aria-current="page"', picker) == [str(days)]
    assert "<b>90</b>" not in body


def test_an_organization_without_usage_gets_an_empty_dashboard(admin_client, admin_membership):
    body = admin_client.get(DASHBOARD).content.decode()

    assert body.count("Nothing generated in this period.") == 2
    assert "Credits spent 0 previous 30 days: 0" in metric(body, "credits")
    assert "rate — previous 30 days: —" in metric(body, "success_rate")
    assert 'class="usage-bar-svg"' not in body


def test_the_ledger_reads_as_one_line_per_generation(admin_client, org, admin_membership):
    credits.top_up(org=org, amount=100, note="Order 7")
    generation(admin_membership, held_at=timezone.now(), images="dfd", count=4, cost=3)

    body = text(admin_client.get(DASHBOARD).content.decode().split('id="recent-ledger"', 1)[1])

    assert "2 of 4 images so far, 6 credits spent, 3 refunded, holding 3" in body
    assert "-9" in body
    assert "Top-up · Order 7" in body
    assert "Capture" not in body and "Release" not in body


def test_only_admins_see_the_dashboard(client, member_membership, admin_membership):
    client.force_login(member_membership.user)
    assert client.get(DASHBOARD).status_code == 403
    client.logout()
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_admin_sees_only_their_own_organizations_usage(client, history, other_admin_membership):
    rival_spending(other_admin_membership, timezone.localdate())  # days 0, 3 and 9, in UTC
    client.force_login(other_admin_membership.user)
    body = client.get(DASHBOARD, {"days": 7}).content.decode()

    assert table_rows(body, "By model") == [["Rival model", "12", "4", "100%", "30 s"]]
    assert "Ada Admin" not in body and "Seedream" not in body


def test_the_members_page_shows_each_members_usage_of_30_days(admin_client, history):
    body = admin_client.get(MEMBERS).content.decode()
    rows = re.findall(r'<tr id="member-[^"]+">(.*?)</tr>', body, re.S)
    usage = {
        text(re.search(r"<strong>(.*?)</strong>", row).group(1)): text(
            re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[3]
        )
        for row in rows
    }

    assert usage == {
        # 30 days: G1 + G4 + G6's capture (its hold is older) = 9 + 12 + 3 credits.
        "Ada Admin": "8 images · 24 credits",
        # G2 + G3 + G5 (all failed) = 3 + 3 + 0 credits.
        "Max Member": "4 images · 6 credits",
        # Only a running generation: nothing spent yet.
        "Kim Kuro": "0 images · 0 credits",
    }


# --- Queries: the same number however long the history and however many members ---------------


def queries(client, url: str) -> int:
    """Queries of a request with nothing cached: every day summed from the ledger."""
    client.get(url)  # the session and the like, once
    cache.clear()
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def more_history(org, members: int, generations: int) -> None:
    """`members` more members, each with `generations` generations over the last 80 days,
    today included, on two more models."""
    credits.top_up(org=org, amount=100_000)
    now = timezone.now()
    for m in range(members):
        membership = MembershipFactory(org=org)
        for n in range(generations):
            generation(
                membership,
                held_at=now - timedelta(days=n * 80 // generations, minutes=m),
                images="ddf",
                model=f"Model {n % 2}",
            )


@pytest.mark.parametrize("url", [f"{DASHBOARD}?days=7", f"{DASHBOARD}?days=90", MEMBERS])
def test_pages_run_the_same_queries_however_long_the_history(admin_client, org, history, url):
    small = queries(admin_client, url)
    more_history(org, members=3, generations=4)
    larger = queries(admin_client, url)

    assert larger == small
    assert small <= 16
