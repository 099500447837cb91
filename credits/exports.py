"""CSV exports for admins: the ledger, and usage per member, per model and per day.

Rows are produced lazily (the ledger through a database iterator) and written a few hundred at a
time, so an export of a year of ledger entries never holds more than a chunk in memory. Times are
ISO 8601 in the organization's time zone; dates bound the export inclusively in that zone too.

Cells that a spreadsheet would read as a formula (starting with = + - @, a tab or a carriage
return) get a leading apostrophe: notes, names and prompts are typed by people. Numbers are
written as numbers and never need it.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from credits.models import LedgerEntry
from credits.usage import DEFAULT_DAYS, Period, Usage
from orgs.models import Organization

MAX_DAYS = 366  # a year, leap years too, per export
ROWS_PER_CHUNK = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
OPERATOR = "NER Studio"  # how the platform's staff appear to an organization, as on the dashboard

LEDGER_HEADER = [
    "time",
    "kind",
    "delta",
    "balance_after",
    "amount",
    "member_email",
    "model",
    "generation",
    "note",
]
USAGE_HEADER = [
    "breakdown",
    "item",
    "name",
    "credits_spent",
    "images",
    "failed_images",
    "success_rate",
    "average_generation_seconds",
]


class ExportForm(forms.Form):
    """`since` and `until`, inclusive dates in the organization's time zone. Missing, they are
    the dashboard's period: the `days` days ending today."""

    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput({"type": "date"}, "%Y-%m-%d")
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput({"type": "date"}, "%Y-%m-%d")
    )

    def __init__(self, data=None, *, org: Organization, days: int = DEFAULT_DAYS):
        self.org, self.default = org, Period.last_days(org, days)
        super().__init__(data, initial={"since": self.default.first, "until": self.default.last})

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        until = cleaned.get("until") or self.default.last
        since = cleaned.get("since") or until - timedelta(days=self.default.days - 1)
        if since > until:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if (until - since).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Export at most {MAX_DAYS} days at a time.")
        cleaned["since"], cleaned["until"] = since, until
        return cleaned

    @property
    def period(self) -> Period:
        return Period(self.cleaned_data["since"], self.cleaned_data["until"], self.org.zone)


def filename(org: Organization, what: str, period: Period) -> str:
    """`<org-slug>-ledger-2026-11-01-to-2026-11-30.csv`"""
    return f"{org.slug}-{what}-{period.first.isoformat()}-to-{period.last.isoformat()}.csv"


def safe_cell(value: Any) -> Any:
    """The cell as written: text a spreadsheet would run as a formula gets an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text, ROWS_PER_CHUNK rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        pending += 1
        if pending == ROWS_PER_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue()


def ledger_rows(org: Organization, period: Period) -> Iterator[list[Any]]:
    """The header, then one row per ledger entry of the period, oldest first."""
    yield LEDGER_HEADER
    entries = (
        LedgerEntry.objects.filter(
            org_id=org.pk, created_at__gte=period.start, created_at__lt=period.end
        )
        .order_by("created_at", "pk")
        .values_list(
            "created_at",
            "kind",
            "delta",
            "balance_after",
            "amount",
            "actor__email",
            "actor__is_superuser",
            "generation__provider_name",
            "generation__public_id",
            "note",
        )
    )
    for (
        at,
        kind,
        delta,
        balance,
        amount,
        email,
        operator,
        model,
        generation,
        note,
    ) in entries.iterator(chunk_size=2000):
        yield [
            timezone.localtime(at, period.zone).isoformat(timespec="seconds"),
            kind,
            delta,
            balance,
            amount,
            OPERATOR if operator else email or "",
            model or "",
            generation or "",
            note,
        ]


def usage_rows(org: Organization, period: Period) -> Iterator[list[Any]]:
    """The header, then one row per member, per model and per day of the period (one `breakdown`
    column tells them apart; every day is listed, days without usage too)."""
    yield USAGE_HEADER
    usage = Usage(org, period)
    for row in usage.by_member:
        yield [
            "member",
            row["actor__email"] or "removed member",
            row["actor__name"] or "",
            *_figures(row),
        ]
    for row in usage.by_model:
        yield ["model", row["model"] or "unknown model", "", *_figures(row)]
    for day in usage.days:
        yield ["day", day.day.isoformat(), "", *_figures(vars(day))]


def _figures(row: dict) -> list[Any]:
    rate, seconds = row["success_rate"], row["generation_seconds"]
    return [
        row["credits"],
        row["images"],
        row["failed"],
        "" if rate is None else f"{rate:.4f}",
        "" if seconds is None else f"{seconds:.1f}",
    ]
