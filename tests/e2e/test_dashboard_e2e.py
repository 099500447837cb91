"""The dashboard as an organization admin uses it: the balance the ledger says, the period
switch (a boosted navigation, so no full reload), the metrics and the chart of each period."""

import re

BALANCE = """
from credits.models import CreditAccount

print(CreditAccount.objects.get(org__name="Demo Studio").balance)
"""


def test_the_dashboard_switches_periods_and_shows_its_figures(e2e_server, admin_page):
    page = admin_page
    page.goto(f"{e2e_server.url}/dashboard/")
    balance = int(e2e_server.shell(BALANCE))
    shown = page.locator("#credit-balance h3").inner_text()
    assert int(shown.replace(",", "")) == balance
    page.evaluate("window.e2eSamePage = true")

    for days in (7, 90, 30):
        page.locator(".period-picker").get_by_role("link", name=f"{days} days").click()
        page.wait_for_url(f"{e2e_server.url}/dashboard/?days={days}")
        current = page.locator('.period-picker a[aria-current="page"]')
        assert current.inner_text() == f"{days} days"
        assert f"Usage, last {days} days" in page.locator("#usage header").inner_text()
        figures = page.locator("#usage .metric strong").all_inner_texts()
        assert figures and all(re.search(r"\d|—", figure) for figure in figures), figures
        chart = page.locator("#usage svg.usage-svg")
        assert chart.is_visible()
        assert chart.locator("title").first.text_content().startswith("Credits spent per day")

    assert page.evaluate("window.e2eSamePage") is True, "a period switch reloaded the page"
