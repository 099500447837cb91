"""An organization admin changes its image models in the Django admin, and the next generation
uses the change: another model, enabled and made the default there, is preselected on Generate
with its own price and aspect ratio, and renders the images."""

import re

import pytest

from tests.e2e.flows import WAIT_MS, product_photo, wait_until_done

WIDE = "Wide renderer (offline)"
ORG = "Demo Studio"

# What the platform operator would add in the admin: a second offline model, for 2 credits an
# image, 16:9 by default; the organization has it, switched off.
ADD_WIDE_MODEL = f"""
from orgs.models import Organization
from providers.defaults import catalogue_settings
from providers.models import CatalogueEntry, PlatformModel

org = Organization.objects.get(name={ORG!r})
entry, _ = CatalogueEntry.objects.get_or_create(
    adapter="local-image", model_id="local-wide",
    defaults={{"name": {WIDE!r}, "priority": 95, "credit_cost": 2,
               **catalogue_settings("local-image"), "default_aspect_ratio": "16:9"}},
)
if not PlatformModel.objects.filter(org=org, catalogue=entry).exists():
    row = PlatformModel(org=org, catalogue=entry, name=entry.name, priority=95, enabled=False)
    row.full_clean(exclude=["org"])
    row.save()
"""

# Afterwards the shipped local renderer is the default again, and the wide one is switched off,
# for the tests that follow on the same server.
RESTORE = f"""
from providers.models import PlatformModel

rows = PlatformModel.objects.filter(org__name={ORG!r}, kind="image")
local = rows.get(catalogue__adapter="local-image", catalogue__model_id="")
local.is_default = True
local.save()
rows.filter(catalogue__model_id="local-wide").update(enabled=False, is_default=False)
"""


@pytest.fixture
def wide_model(e2e_server):
    e2e_server.shell(ADD_WIDE_MODEL)
    yield WIDE
    e2e_server.shell(RESTORE)


def test_a_model_made_the_default_in_the_admin_runs_the_next_generation(
    e2e_server, admin_page, wide_model, tmp_path
):
    page = admin_page
    page.goto(f"{e2e_server.url}/admin/providers/platformmodel/")
    page.get_by_role("link", name=wide_model, exact=True).click()
    page.check("#id_enabled")
    page.check("#id_is_default")
    page.click("input[name=_save]")
    page.wait_for_url(f"{e2e_server.url}/admin/providers/platformmodel/")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()

    page.goto(f"{e2e_server.url}/generate/")
    assert page.locator("#id_model option:checked").inner_text().startswith(wide_model)
    assert page.locator("#id_aspect_ratio").input_value() == "16:9"
    page.set_input_files("#id_products", product_photo(tmp_path / "mug.png"))
    page.fill("#id_prompt", "A blue ceramic mug on a wide linen table")
    page.fill("#id_count", "2")
    page.wait_for_function(
        "() => document.querySelector('#estimate .estimate-total').textContent.includes('4')"
    )
    page.locator("#estimate button[type=submit]:not([disabled])").click()
    page.wait_for_url(re.compile(r"/generations/[0-9a-f-]{36}/$"), timeout=WAIT_MS)

    facts = page.locator(".gen-facts").inner_text()
    assert wide_model in facts and "16:9" in facts and "4 credits" in facts
    wait_until_done(page)
    frame = page.locator("#generation-live .gen-card .gen-frame").first.bounding_box()
    assert frame["width"] / frame["height"] == pytest.approx(16 / 9, rel=0.02)
