from django.db.models.signals import post_save
from django.dispatch import receiver

from orgs.models import Organization
from providers.defaults import install_default_providers


@receiver(post_save, sender=Organization, dispatch_uid="providers_install_defaults")
def install_defaults_for_new_organization(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        install_default_providers(instance)
