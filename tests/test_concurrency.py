"""Races that only a real database can show (CI runs these on PostgreSQL)."""

import threading

import pytest
from django.db import connection, connections

from orgs import services
from orgs.models import Membership, OrgError
from tests.factories import AdminMembershipFactory, OrganizationFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locking needs PostgreSQL (CI sets it)"
    ),
]


def _race(*calls):
    barrier = threading.Barrier(len(calls))
    outcomes = []

    def run(call):
        barrier.wait()
        try:
            call()
            outcomes.append("ok")
        except OrgError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return sorted(outcomes)


@pytest.mark.parametrize("attempt", range(3))
def test_two_admins_demoting_each_other_at_once_leave_one_admin(attempt):
    org = OrganizationFactory()
    first, second = AdminMembershipFactory(org=org), AdminMembershipFactory(org=org)

    outcomes = _race(
        lambda: services.change_role(membership=first, role="member", actor=second.user),
        lambda: services.change_role(membership=second, role="member", actor=first.user),
    )

    assert outcomes == ["ok", "refused"]
    assert Membership.objects.filter(org=org, role="admin").count() == 1


def test_two_admins_removing_each_other_at_once_leave_one_admin():
    org = OrganizationFactory()
    first, second = AdminMembershipFactory(org=org), AdminMembershipFactory(org=org)

    outcomes = _race(
        lambda: services.remove_member(membership=first, actor=second.user),
        lambda: services.remove_member(membership=second, actor=first.user),
    )

    assert outcomes == ["ok", "refused"]
    assert Membership.objects.filter(org=org, role="admin").count() == 1
