"""Credit movements. Every one locks the organization's account row, appends one ledger entry and
moves the balance in the same transaction, so the balance always equals the ledger's sum and two
concurrent holds can never overdraw it (the CHECK constraint is the backstop)."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from generation.models import CreditAccount, LedgerEntry


class InsufficientCredits(Exception):
    def __init__(self, needed: int, available: int):
        self.needed, self.available = needed, available
        super().__init__(
            f"This needs {needed} credits but your organization has {available}. "
            "Ask an admin to top up, or generate fewer images."
        )


def balance_of(org) -> int:
    return CreditAccount.objects.filter(org=org).values_list("balance", flat=True).first() or 0


def _post(*, org_id: int, kind: str, delta: int, amount: int, **refs) -> LedgerEntry:
    account, _ = CreditAccount.objects.select_for_update().get_or_create(org_id=org_id)
    new_balance = account.balance + delta
    if new_balance < 0:
        raise InsufficientCredits(needed=-delta, available=account.balance)
    entry = LedgerEntry.objects.create(
        org_id=org_id, kind=kind, delta=delta, amount=amount, balance_after=new_balance, **refs
    )
    CreditAccount.objects.filter(pk=account.pk).update(
        balance=new_balance, updated_at=timezone.now()
    )
    return entry


@transaction.atomic
def top_up(*, org, amount: int, actor=None, note: str = "") -> LedgerEntry:
    if amount <= 0:
        raise ValueError("A top-up must add a positive number of credits.")
    return _post(org_id=org.pk, kind=LedgerEntry.Kind.TOPUP, delta=amount, amount=amount,
                 actor=actor, note=note[:200])  # fmt: skip


@transaction.atomic
def adjust(*, org, delta: int, actor, note: str) -> LedgerEntry:
    """A manual correction by platform staff; may not take the balance below zero."""
    if delta == 0:
        raise ValueError("An adjustment must change the balance.")
    return _post(org_id=org.pk, kind=LedgerEntry.Kind.ADJUSTMENT, delta=delta, amount=abs(delta),
                 actor=actor, note=note[:200])  # fmt: skip


@transaction.atomic
def hold(*, generation) -> LedgerEntry:
    """Reserve count × cost for a new generation, or raise InsufficientCredits."""
    amount = generation.total_cost
    return _post(org_id=generation.org_id, kind=LedgerEntry.Kind.HOLD, delta=-amount,
                 amount=amount, actor_id=generation.user_id, generation=generation,
                 provider_id=generation.provider_id)  # fmt: skip


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
            return _post(org_id=generation.org_id, kind=kind, delta=delta,
                         amount=generation.credit_cost, actor_id=generation.user_id,
                         generation=generation, image=image, provider_id=generation.provider_id,
                         note=note[:200])  # fmt: skip
    except IntegrityError:
        return None  # settled before: a duplicate callback or a redelivered task
