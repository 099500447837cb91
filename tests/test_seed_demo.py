import io

import pytest
from django.core.management import call_command

from credits.services import balance_of
from orgs.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_gives_a_ready_organization():
    for _ in range(2):
        call_command("seed_demo", stdout=io.StringIO())

    org = Organization.objects.get(name="Demo Studio")
    roles = dict(Membership.objects.filter(org=org).values_list("user__email", "role"))
    assert roles == {"admin@demo.nerstudio.test": "admin", "member@demo.nerstudio.test": "member"}
    assert balance_of(org) == 500
    assert org.providers.get(is_default=True).adapter == "local-image"
    assert Organization.objects.count() == 1
