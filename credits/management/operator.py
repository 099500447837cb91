"""What the operators' commands share: finding an organization, an operator or a top-up request
from what was typed, and printing aligned tables.

Whoever can run manage.py operates the platform. Credits move on what these lookups return, so a
lookup never guesses: a reference that could mean two organizations is refused with both listed,
and one that means none is refused with the closest names.
"""

import contextlib
import difflib
import re
import uuid
from collections.abc import Iterable, Sequence

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db.models import Q

from credits import services
from credits.models import TopUpRequest
from orgs.models import Organization

HOW_TO_NAME = "its id, public id, slug or name"


def find_organization(ref: str) -> Organization:
    """The one organization `ref` names: by id (a number), public id (a UUID), slug, or name
    (case-insensitive). Every form is tried, so a number that is one organization's id and
    another's name is ambiguous rather than silently the first."""
    ref = ref.strip()
    if not ref:
        raise CommandError(f"Name the organization by {HOW_TO_NAME}.")
    condition = Q(slug=ref.lower()) | Q(name__iexact=ref)
    if ref.isdecimal() and len(ref) <= 18:  # an id fits a bigint
        condition |= Q(pk=int(ref))
    with contextlib.suppress(ValueError):
        condition |= Q(public_id=uuid.UUID(ref))
    matches = list(Organization.objects.active().filter(condition).order_by("pk"))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CommandError(
            f'{len(matches)} organizations match "{ref}"; give the slug or public id of the one '
            f"you mean:\n{describe(matches)}"
        )
    close = close_matches(ref)
    hint = (
        f"Close matches:\n{describe(close)}"
        if close
        else "Run `manage.py list_organizations` to see them all."
    )
    raise CommandError(f'No organization matches "{ref}" ({HOW_TO_NAME}). {hint}')


def close_matches(ref: str, limit: int = 5) -> list[Organization]:
    """Organizations whose name or slug is close to `ref` (difflib), or contains it."""
    wanted = ref.lower()
    by_word: dict[str, set[int]] = {}
    for pk, name, slug in Organization.objects.active().values_list("pk", "name", "slug"):
        for word in (name.lower(), slug):
            by_word.setdefault(word, set()).add(pk)
    close = difflib.get_close_matches(wanted, by_word, n=limit, cutoff=0.6)
    close += [word for word in by_word if wanted in word and word not in close]
    pks: list[int] = []
    for word in close:
        pks += [pk for pk in sorted(by_word[word]) if pk not in pks]
    found = Organization.objects.in_bulk(pks[:limit])
    return [found[pk] for pk in pks[:limit]]


def describe(orgs: Iterable[Organization]) -> str:
    return table(
        [(org.name, org.slug, str(org.pk), str(org.public_id)) for org in orgs],
        ("Name", "Slug", "Id", "Public id"),
        indent="  ",
    )


def find_operator(email: str):
    """The active superuser with this email: the `--by` of a command, recorded as the actor of
    its ledger entry and audit event."""
    user = get_user_model().objects.filter(email__iexact=email.strip()).first()
    if user is None or not services.is_operator(user):
        raise CommandError(f"--by must be an active superuser's email; {email} is not.")
    return user


REFERENCE = re.compile(r"[0-9a-f]{8}|[0-9a-f]{32}")


def find_top_up_request(ref: str) -> TopUpRequest:
    """The request a reference names: the 8 characters the dashboard, the admin and the emails
    show (TopUpRequest.reference), or its whole public id."""
    typed = ref.strip().lower().replace("-", "")
    if not REFERENCE.fullmatch(typed):
        raise CommandError(
            f'"{ref.strip()}" is not a request reference: it is 8 characters like 3f2a9c1e '
            "(see `manage.py list_topup_requests`)."
        )
    requests = TopUpRequest.objects.select_related("org", "requested_by")
    if len(typed) == 32:
        matches = list(requests.filter(public_id=uuid.UUID(typed)))
    else:
        matches = list(requests.filter(public_id__startswith=typed).order_by("pk")[:10])
    if not matches:
        raise CommandError(
            f"No top-up request has the reference {typed}. "
            "Run `manage.py list_topup_requests` to see the pending ones."
        )
    if len(matches) > 1:
        ids = "\n".join(f"  {r.public_id}  {r}" for r in matches)
        raise CommandError(
            f"{len(matches)} requests start with {typed}; give the whole public id:\n{ids}"
        )
    return matches[0]


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], *, indent: str = "") -> str:
    """Rows under their headers, each column as wide as its widest cell; numbers (columns whose
    header is in NUMERIC) aligned right."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]

    def line(cells):
        parts = [
            str(cell).rjust(width) if header in NUMERIC else str(cell).ljust(width)
            for cell, width, header in zip(cells, widths, headers, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


NUMERIC = {"Id", "Members", "Balance", "Pending", "Amount"}
