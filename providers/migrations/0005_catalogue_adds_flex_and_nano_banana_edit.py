from django.db import migrations


def install_new_catalogue_models(apps, schema_editor):
    """FLUX.2 Flex and Nano Banana Edit join the starting catalogue (get_or_create: safe to run
    on a catalogue the operator already edited)."""
    from providers.defaults import install_catalogue

    install_catalogue(apps.get_model("providers", "CatalogueEntry"))


class Migration(migrations.Migration):
    dependencies = [("providers", "0004_webhook_secrets_and_attempt_details")]

    operations = [migrations.RunPython(install_new_catalogue_models, migrations.RunPython.noop)]
