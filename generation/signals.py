from django.db.models.signals import post_save
from django.dispatch import receiver

from generation.models import CreditAccount
from orgs.models import Organization


@receiver(post_save, sender=Organization, dispatch_uid="generation_open_credit_account")
def open_credit_account_for_new_organization(sender, instance, created, raw=False, **kwargs):
    """Every organization has an account row from the start, so the balance shows as 0 and the
    first credit movement has a row to lock."""
    if created and not raw:
        CreditAccount.objects.get_or_create(org=instance)
