"""Credit figures for pages whose views belong to other apps (the organization dashboard)."""

from django import template

from generation.models import CreditAccount, LedgerEntry

register = template.Library()


@register.simple_tag
def credit_account(org) -> CreditAccount:
    """The organization's account; an unsaved one with balance 0 if it has none yet."""
    return CreditAccount.objects.filter(org=org).first() or CreditAccount(org=org)


@register.simple_tag
def recent_ledger_entries(org, limit: int = 5) -> list[LedgerEntry]:
    entries = LedgerEntry.objects.filter(org=org).select_related("actor", "generation")
    return list(entries[:limit])
