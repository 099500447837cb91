from django.db import migrations


def create_accounts(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    CreditAccount = apps.get_model("generation", "CreditAccount")
    CreditAccount.objects.bulk_create(
        [CreditAccount(org=org, balance=0) for org in Organization.objects.filter(credits=None)]
    )


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial"), ("orgs", "0002_organization_config_version")]

    operations = [migrations.RunPython(create_accounts, migrations.RunPython.noop)]
