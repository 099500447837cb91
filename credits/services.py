"""Credit movements. Every one locks the organization's account row, appends one ledger entry and
moves the balance in the same transaction, so the balance always equals the ledger's sum and two
concurrent holds can never overdraw it (the CHECK constraint is the backstop)."""

import logging
import math
from functools import partial

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit.services import record_event
from credits import limits
from credits.models import CreditAccount, LedgerEntry, TopUpRequest
from orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

MAX_MOVEMENT = 1_000_000_000  # an operator's typo guard, far above any real purchase


class InsufficientCredits(Exception):
    """What the organization lacks; the page adds what this person can do about it (an admin
    requests credits, a member asks an admin)."""

    def __init__(self, needed: int, available: int):
        self.needed, self.available = needed, available
        super().__init__(
            f"This needs {limits.credits(needed)} but your organization has "
            f"{limits.credits(available)}."
        )


def open_account(*, org: Organization) -> CreditAccount:
    """The organization's account, opened with a balance of 0 if it has none yet, so the balance
    shows from the start and the first credit movement has a row to lock. Called when an
    organization is created (workspace.services.open_organization)."""
    account, _ = CreditAccount.objects.get_or_create(org=org)
    return account


def balance_of(org) -> int:
    return CreditAccount.objects.filter(org=org).values_list("balance", flat=True).first() or 0


def _post(*, org_id: int, kind: str, delta: int, amount: int, account=None, **refs) -> LedgerEntry:
    """A ledger entry and the balance it leaves, under the account's row lock (taken here unless
    `account` is given, already locked in this transaction)."""
    if account is None:
        account = _locked_account(org_id)
    new_balance = account.balance + delta
    if new_balance < 0:
        raise InsufficientCredits(needed=-delta, available=account.balance)
    entry = LedgerEntry.objects.create(
        org_id=org_id, kind=kind, delta=delta, amount=amount, balance_after=new_balance, **refs
    )
    if delta:  # a capture (delta 0, one per image done) leaves the account as it is
        CreditAccount.objects.filter(pk=account.pk).update(
            balance=new_balance, updated_at=timezone.now()
        )
    limits.watch_low_balance(org_id, new_balance, delta)
    return entry


def _locked_account(org_id: int) -> CreditAccount:
    account, _ = CreditAccount.objects.select_for_update().get_or_create(org_id=org_id)
    return account


def is_operator(user) -> bool:
    """Platform operators own the currency: only they add credits or decide top-up requests.
    Organization admins are tenants and never are."""
    return bool(user and user.is_active and user.is_superuser)


@transaction.atomic
def top_up(*, org, amount: int, actor=None, note: str = "") -> LedgerEntry:
    """Add credits. Only operator paths call this: the topup_credits command, the superuser-only
    admin view and approve_top_up_request."""
    if amount <= 0:
        raise ValueError("A top-up must add a positive number of credits.")
    entry = _post(
        org_id=org.pk,
        kind=LedgerEntry.Kind.TOPUP,
        delta=amount,
        amount=amount,
        actor=actor,
        note=note[:200],
    )
    _record_movement(entry, org, "credits.topped_up")
    return entry


@transaction.atomic
def adjust(*, org, delta: int, actor, note: str) -> LedgerEntry:
    """A manual correction by platform staff; may not take the balance below zero."""
    if delta == 0:
        raise ValueError("An adjustment must change the balance.")
    entry = _post(
        org_id=org.pk,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        delta=delta,
        amount=abs(delta),
        actor=actor,
        note=note[:200],
    )
    _record_movement(entry, org, "credits.adjusted")
    return entry


def _record_movement(entry: LedgerEntry, org, action: str) -> None:
    """An operator's top-up or adjustment, in the audit log (actor None: the command line)."""
    after = {"balance": entry.balance_after, **({"note": entry.note} if entry.note else {})}
    record_event(
        actor=entry.actor,
        action=action,
        org=org,
        target=entry,
        before={"balance": entry.balance_after - entry.delta},
        after=after,
    )


@transaction.atomic
def hold(*, generation) -> LedgerEntry:
    """Reserve count × cost for a new generation, or raise InsufficientCredits, or
    limits.MonthlyLimitReached when it would take its member over their monthly limit (checked
    under the account lock, so two generations at once cannot both slip under it)."""
    amount = generation.total_cost
    account = _locked_account(generation.org_id)
    limits.check_monthly_limit(generation)
    return _post(
        account=account,
        org_id=generation.org_id,
        kind=LedgerEntry.Kind.HOLD,
        delta=-amount,
        amount=amount,
        actor_id=generation.user_id,
        generation=generation,
        provider_id=generation.provider_id,
    )


def capture(*, image) -> LedgerEntry | None:
    """The image arrived: its share of the hold is spent. None if it was already settled."""
    return _settle(image, LedgerEntry.Kind.CAPTURE, delta=0)


def release(*, image, note: str = "") -> LedgerEntry | None:
    """The image failed or timed out: its share goes back. None if it was already settled."""
    return _settle(image, LedgerEntry.Kind.RELEASE, delta=image.generation.credit_cost, note=note)


def _settle(image, kind, *, delta, note="") -> LedgerEntry | None:
    generation = image.generation
    try:
        with transaction.atomic():
            return _post(
                org_id=generation.org_id,
                kind=kind,
                delta=delta,
                amount=generation.credit_cost,
                actor_id=generation.user_id,
                generation=generation,
                image=image,
                provider_id=generation.provider_id,
                note=note[:200],
            )
    except IntegrityError:
        return None  # settled before: a duplicate callback or a redelivered task


# --- Top-up requests: organization admins ask, platform operators decide -------------------------


class TopUpRequestError(Exception):
    """A refused top-up request or decision, with a message safe to show the user."""


def request_top_up(*, org, user, amount: int, note: str = "") -> TopUpRequest:
    """An organization admin asks the platform for `amount` credits. Operators are emailed (when
    ADMINS is set) once the request is stored, so an organization has at most
    MAX_PENDING_PER_ORG open at once and makes at most MAX_UNANSWERED_PER_DAY a day that the
    platform did not answer: withdrawing and asking again cannot mail the operators without
    end."""
    if not Membership.objects.filter(org=org, user=user, role=Membership.Role.ADMIN).exists():
        raise TopUpRequestError("Only organization admins can request credits.")
    if not TopUpRequest.MIN_AMOUNT <= amount <= TopUpRequest.MAX_AMOUNT:
        raise TopUpRequestError(
            f"Request between {TopUpRequest.MIN_AMOUNT:,} and {TopUpRequest.MAX_AMOUNT:,} credits."
        )
    limit = TopUpRequest.MAX_PENDING_PER_ORG
    with transaction.atomic():
        # Lock the organization so concurrent requests count the open ones one after another.
        list(Organization.objects.select_for_update().filter(pk=org.pk).values_list("pk"))
        if TopUpRequest.objects.for_org(org).pending().count() >= limit:
            raise TopUpRequestError(
                f"Your organization already has {limit} open requests. Wait for the platform to "
                "answer them, or withdraw one, before asking again."
            )
        _check_daily_requests(org)
        top_up_request = TopUpRequest.objects.create(
            org=org, requested_by=user, amount=amount, note=note.strip()[:200]
        )
        record_event(
            actor=user,
            action="top_up_request.requested",
            org=org,
            target=top_up_request,
            after={"amount": amount, "note": top_up_request.note},
        )
        transaction.on_commit(partial(_tell_operators, top_up_request.pk))
    return top_up_request


def _check_daily_requests(org) -> None:
    limit, window = TopUpRequest.MAX_UNANSWERED_PER_DAY, TopUpRequest.UNANSWERED_WINDOW
    recent = (
        TopUpRequest.objects.for_org(org)
        .unanswered()
        .filter(created_at__gt=timezone.now() - window)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
    )
    counted = list(recent[:limit])
    if len(counted) < limit:
        return
    # The oldest of the last `limit` requests leaves the window first.
    hours = math.ceil((counted[-1] + window - timezone.now()).total_seconds() / 3600)
    raise TopUpRequestError(
        f"Your organization has made {limit} credit requests in the past "
        f"{window.total_seconds() / 3600:g} hours, counting withdrawn ones: the most "
        f"allowed. You can ask again in {hours} hour{'s' if hours != 1 else ''}."
    )


def approve_top_up_request(*, top_up_request: TopUpRequest, operator) -> TopUpRequest:
    """Top up exactly the requested amount, with the operator as the ledger entry's actor. A
    request is approved at most once: its row is locked and claimed with a conditional UPDATE in
    the same transaction as the top-up, so a second approval (or a decline, or a withdrawal) at
    the same moment finds it decided and adds nothing. `operator` None is the command line
    (approve_topup_request), whose user operates the platform, as for top_up."""
    if operator is not None and not is_operator(operator):
        raise TopUpRequestError("Only platform operators can approve top-up requests.")
    with transaction.atomic():
        pending = (
            TopUpRequest.objects.select_for_update()
            .filter(pk=top_up_request.pk, status=TopUpRequest.Status.PENDING)
            .first()
        )
        if pending is None:
            raise _already_decided(top_up_request)
        note = f"Request {pending.reference}" + (f": {pending.note}" if pending.note else "")
        # The ledger's top-up, recorded once in the audit log as the approval below.
        entry = _post(
            org_id=pending.org_id,
            kind=LedgerEntry.Kind.TOPUP,
            delta=pending.amount,
            amount=pending.amount,
            actor=operator,
            note=note[:200],
        )
        claimed = TopUpRequest.objects.filter(
            pk=pending.pk, status=TopUpRequest.Status.PENDING
        ).update(
            status=TopUpRequest.Status.APPROVED,
            decided_by=operator,
            decided_at=timezone.now(),
            ledger_entry=entry,
        )
        if not claimed:  # only where the row lock is a no-op (SQLite); rolls the top-up back
            raise _already_decided(top_up_request)
        record_event(
            actor=operator,
            action="top_up_request.approved",
            org=pending.org,
            target=pending,
            before={
                "status": TopUpRequest.Status.PENDING.value,
                "balance": entry.balance_after - entry.delta,
            },
            after={"status": TopUpRequest.Status.APPROVED.value, "balance": entry.balance_after},
        )
    return TopUpRequest.objects.select_related("org", "ledger_entry").get(pk=pending.pk)


def decline_top_up_request(
    *, top_up_request: TopUpRequest, operator, note: str = ""
) -> TopUpRequest:
    """Refuse a pending request; no credits move. The operator's `note` (why) is kept in the
    audit log, which the organization's admins read. `operator` None is the command line."""
    if operator is not None and not is_operator(operator):
        raise TopUpRequestError("Only platform operators can decline top-up requests.")
    with transaction.atomic():
        declined = _close(top_up_request, TopUpRequest.Status.DECLINED, decided_by=operator)
        _record_decision(declined, operator, "top_up_request.declined", note=note.strip()[:200])
    return declined


def withdraw_top_up_request(*, top_up_request: TopUpRequest, user) -> TopUpRequest:
    """The organization's admin takes back a request that is still pending."""
    if not Membership.objects.filter(
        org_id=top_up_request.org_id, user=user, role=Membership.Role.ADMIN
    ).exists():
        raise TopUpRequestError("Only the organization's admins can withdraw its requests.")
    with transaction.atomic():
        withdrawn = _close(top_up_request, TopUpRequest.Status.WITHDRAWN, decided_by=user)
        _record_decision(withdrawn, user, "top_up_request.withdrawn")
    return withdrawn


def _record_decision(top_up_request: TopUpRequest, actor, action: str, note: str = "") -> None:
    after = {"status": top_up_request.status, **({"note": note} if note else {})}
    record_event(
        actor=actor,
        action=action,
        org=top_up_request.org,
        target=top_up_request,
        before={"status": TopUpRequest.Status.PENDING.value},
        after=after,
    )


def _close(top_up_request, status, *, decided_by) -> TopUpRequest:
    claimed = TopUpRequest.objects.filter(
        pk=top_up_request.pk, status=TopUpRequest.Status.PENDING
    ).update(status=status, decided_by=decided_by, decided_at=timezone.now())
    if not claimed:
        raise _already_decided(top_up_request)
    return TopUpRequest.objects.select_related("org").get(pk=top_up_request.pk)


def _already_decided(top_up_request) -> TopUpRequestError:
    current = TopUpRequest.objects.filter(pk=top_up_request.pk).first()
    if current is None:
        return TopUpRequestError(f"Request {top_up_request.reference} no longer exists.")
    return TopUpRequestError(
        f"Request {current.reference} was already {current.get_status_display().lower()}."
    )


def _tell_operators(top_up_request_id: int) -> None:
    """Best effort: a failed email must not lose or fail the request, which the admin lists."""
    if not settings.ADMINS:
        return
    try:
        top_up_request = TopUpRequest.objects.select_related("org", "requested_by").get(
            pk=top_up_request_id
        )
        org_name = " ".join(str(top_up_request.org).split())  # no line breaks in a subject
        url = settings.NERSTUDIO_PUBLIC_URL + reverse("admin:credits_topuprequest_changelist")
        requester = top_up_request.requested_by
        who = f"{requester} <{requester.email}>" if requester else "A former admin"
        mail_admins(
            f"Top-up request: {limits.credits(top_up_request.amount)} for {org_name}",
            f"{who} asked for {limits.credits(top_up_request.amount)} for "
            f"{org_name} (balance {balance_of(top_up_request.org):,}).\n\n"
            f"Note: {top_up_request.note or '(none)'}\n\n"
            f"Approve or decline it in the admin: {url}\n",
        )
    except Exception:
        logger.exception("Could not email the operators about top-up request %s", top_up_request_id)
