"""Per-member monthly limits and the low-balance warning: the two ways an organization's admins
keep spending under control (issue 11).

A member's month is the calendar month in the organization's time zone. What counts against the
limit is what their generations started this month committed: each hold, less what failed images
gave back. A generation that would go over is refused before anything is held, inside the same
account lock as the hold, so two generations started at once cannot both slip under the limit.

The low-balance warning: when a movement takes the balance below the organization's threshold,
its admins are emailed once; the warning re-arms when the balance is back at or above it.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from audit.services import record_event
from credits.models import LedgerEntry
from orgs.models import Membership, Organization

logger = logging.getLogger(__name__)


class MonthlyLimitReached(Exception):
    """A generation that would take a member over their monthly limit, with a message that names
    the limit, what is left and when it resets."""

    def __init__(self, usage: "MonthlyUsage", needed: int):
        self.usage, self.needed = usage, needed
        left = usage.left or 0
        super().__init__(
            f"This needs {credits(needed)}, but your monthly limit is {credits(usage.limit or 0)} "
            f"and {credits(left)} {'is' if left == 1 else 'are'} left until "
            f"{usage.resets_on:%-d %B}."
        )


def credits(n: int) -> str:
    return f"{n:,} credit{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class MonthlyUsage:
    spent: int  # committed this month: held, less what failed images gave back
    limit: int | None  # None: no limit
    resets_on: date  # the first day of next month, in the organization's time zone

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.spent)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.spent / self.limit)) if self.limit else 0


def month_start(org: Organization, now: datetime | None = None) -> tuple[datetime, date]:
    """This month's first moment and next month's first day, in the organization's time zone."""
    local = timezone.localtime(now or timezone.now(), org.zone)
    first = local.date().replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime.combine(first, time.min, tzinfo=org.zone), following


def _committed_this_month(org: Organization, start: datetime):
    return LedgerEntry.objects.filter(
        org_id=org.pk,
        kind__in=(LedgerEntry.Kind.HOLD, LedgerEntry.Kind.RELEASE),
        created_at__gte=start,  # the index's range; a release comes after its hold
        generation__created_at__gte=start,
    )


def monthly_usage(membership: Membership, *, now: datetime | None = None) -> MonthlyUsage:
    start, resets_on = month_start(membership.org, now)
    committed = (
        _committed_this_month(membership.org, start)
        .filter(actor_id=membership.user_id)
        .aggregate(total=Sum("delta"))["total"]
    )
    return MonthlyUsage(-(committed or 0), membership.monthly_limit, resets_on)


def monthly_usage_by_member(memberships: list[Membership]) -> dict[int, MonthlyUsage]:
    """monthly_usage for several members of one organization, in one query, by membership pk."""
    if not memberships:
        return {}
    org = memberships[0].org
    start, resets_on = month_start(org)
    spent = dict(
        _committed_this_month(org, start)
        .values("actor_id")
        .annotate(total=Sum("delta"))
        .values_list("actor_id", "total")
    )
    return {
        m.pk: MonthlyUsage(-(spent.get(m.user_id) or 0), m.monthly_limit, resets_on)
        for m in memberships
    }


def check_monthly_limit(generation) -> None:
    """Raise MonthlyLimitReached if holding this generation would take its member over their
    limit. Call with the organization's account row locked (credits.services.hold does)."""
    membership = (
        Membership.objects.select_related("org")
        .filter(org_id=generation.org_id, user_id=generation.user_id)
        .first()
    )
    if membership is None or membership.monthly_limit is None:
        return
    usage = monthly_usage(membership, now=generation.created_at)
    if usage.spent + generation.total_cost > membership.monthly_limit:
        raise MonthlyLimitReached(usage, generation.total_cost)


@transaction.atomic  # the limit changes only with its audit event
def set_monthly_limit(*, membership: Membership, limit: int | None, actor) -> Membership:
    before = membership.monthly_limit
    if before == limit:
        return membership
    membership.monthly_limit = limit
    membership.save(update_fields=["monthly_limit"])
    record_event(
        actor=actor,
        action="member.limit_changed",
        org=membership.org,
        target=membership,
        before={"monthly_limit": before},
        after={"monthly_limit": limit},
    )
    return membership


def watch_low_balance(org_id: int, balance: int, delta: int) -> None:
    """After a movement of `delta` to `balance`: fire the organization's low-balance warning when
    the balance fell below the threshold, re-arm it when it rose back to it. One conditional
    UPDATE, none for a capture (delta 0, the commonest movement). Runs inside the movement's
    transaction; the email goes after it commits."""
    if delta < 0:
        crossed = Organization.objects.filter(
            pk=org_id, low_balance_warned_at__isnull=True, low_balance_threshold__gt=balance
        ).update(low_balance_warned_at=timezone.now())
        if crossed:
            transaction.on_commit(lambda: _email_admins(org_id, balance))
    elif delta > 0:
        Organization.objects.filter(
            pk=org_id, low_balance_warned_at__isnull=False, low_balance_threshold__lte=balance
        ).update(low_balance_warned_at=None)


def _email_admins(org_id: int, balance: int) -> None:
    """Best effort: a failed email must never fail a credit movement."""
    try:
        org = Organization.objects.get(pk=org_id)
        emails = list(
            Membership.objects.admins().filter(org_id=org_id).values_list("user__email", flat=True)
        )
        if not emails:
            return
        url = settings.NERSTUDIO_PUBLIC_URL + reverse("workspace:dashboard")
        send_mail(
            f"Low balance: {credits(balance)} left in {' '.join(org.name.split())}",
            f"{org.name} has {credits(balance)} left, below the warning level of "
            f"{credits(org.low_balance_threshold or 0)} you set.\n\n"
            f"Request more credits from the dashboard: {url}\n\n"
            "You get this email once each time the balance falls below the warning level.",
            None,
            emails,
        )
    except Exception:
        logger.exception("Could not email the admins of organization %s about its balance", org_id)
