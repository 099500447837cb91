"""Four inputs that used to answer 500 now answer with a clear error (issue 7)."""

import pytest
from django.urls import reverse

from orgs.models import Invitation
from providers.models import Provider

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:providers_platformmodel_changelist")


def changelist_rows(org, overrides=None):
    """The platform-model changelist formset as the admin posts it; `overrides` maps a row
    index to the fields it changes."""
    rows = list(Provider.objects.filter(org=org).order_by("kind", "priority", "pk"))
    data = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "_save": "Save"}
    for i, row in enumerate(rows):
        fields = {
            "id": row.pk,
            "priority": row.priority,
            "enabled": row.enabled,
            "visible_to_members": row.visible_to_members,
        }
        fields.update((overrides or {}).get(i, {}))
        for name, value in fields.items():
            if value is True:
                data[f"form-{i}-{name}"] = "on"
            elif value is not False:
                data[f"form-{i}-{name}"] = value
    return rows, data


def test_unticking_enabled_on_the_default_model_in_the_changelist_is_a_clear_error(
    admin_client, org
):
    rows, _ = changelist_rows(org)
    default = next(i for i, row in enumerate(rows) if row.is_default)
    _, data = changelist_rows(org, {default: {"enabled": False}})

    response = admin_client.post(CHANGELIST, data)

    assert response.status_code == 200
    assert "The default image model must stay enabled" in response.content.decode()
    assert Provider.objects.get(pk=rows[default].pk).enabled


def test_a_changelist_row_naming_another_orgs_provider_changes_nothing(
    admin_client, org, other_admin
):
    theirs = other_admin.membership.org.providers.get(adapter="local-llm")
    _, data = changelist_rows(org, {0: {"id": theirs.pk, "priority": 1}})

    response = admin_client.post(CHANGELIST, data, follow=True)

    assert response.status_code == 200
    assert "names rows that are not yours; nothing was saved" in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.priority != 1
    assert not Provider.objects.filter(org=org, priority=1).exists()


def test_deeply_nested_json_in_a_callback_answers_400(client, admin_membership):
    """More shapes of hostile bodies: test_callback_hygiene.py."""
    from tests.security.test_callback_hygiene import callback_url, generating_image

    local = admin_membership.org.providers.get(adapter="local-image")
    image = generating_image(admin_membership.org, local)

    response = client.post(
        callback_url(image), data=b"[" * 50_000 + b"]" * 50_000, content_type="application/json"
    )

    assert response.status_code == 400


def test_an_invitation_email_over_254_characters_is_a_form_error(admin_client, org):
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example.com"  # 261 characters

    response = admin_client.post(reverse("workspace:invite"), {"email": email, "role": "member"})

    assert response.status_code == 422
    assert "at most 254 characters" in response.content.decode()
    assert not Invitation.objects.filter(org=org).exists()
