from django.db import migrations, models
from django.utils.text import slugify

import orgs.models


def fill_slugs(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    taken = set()
    for org in Organization.objects.order_by("pk"):
        base = slugify(org.name)[:50].strip("-") or "organization"
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        taken.add(slug)
        Organization.objects.filter(pk=org.pk).update(slug=slug)


class Migration(migrations.Migration):
    dependencies = [("orgs", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="slug",
            # No index yet: the unique one comes once every row has its slug (PostgreSQL would
            # otherwise be asked for its "_like" index twice).
            field=models.SlugField(default="", max_length=60, db_index=False),
            preserve_default=False,
        ),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="organization",
            name="slug",
            field=models.SlugField(max_length=60, unique=True),
        ),
        migrations.AddField(
            model_name="organization",
            name="time_zone",
            field=models.CharField(
                choices=orgs.models.time_zone_choices,
                default="UTC",
                help_text="Days on the dashboard, in exports and monthly limits start at midnight here.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="default_monthly_limit",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Credits a new member may spend per calendar month; empty for no limit.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="low_balance_threshold",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Warn the admins when the balance falls below this; empty for no warning.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="low_balance_warned_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="membership",
            name="monthly_limit",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
