"""Adapter options: each adapter declares a small Django form of them, as pretix's payment
providers contribute a settings form.

The form is the one place options are validated: the admin shows its fields, a provider row's
`clean()` and the adapter's constructor clean stored options through it. Every field is optional:
blank means the provider's own default, and blank values are not stored. Importing Django's forms
needs no settings; cleaning (its messages are translatable) needs them configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django import forms

from lib import egress


class AdapterOptions(forms.Form):
    """An adapter without options. Subclass it and declare fields, all `required=False`."""

    # Fields about the account a provider is called with rather than the model (where uploads
    # go): an own-key provider sets them, a catalogue model takes its platform account's. They
    # are never sent as model input.
    account_fields: ClassVar[tuple[str, ...]] = ()


def choices(*values: str) -> list[tuple[str, str]]:
    """A ChoiceField's choices: blank (the provider's default), then `values` as they are sent."""
    return [("", "the provider's default"), *((value, value) for value in values)]


def check_base_url(value: str) -> None:
    """The egress policy for a URL that calls are made below (lib.egress.check_url)."""
    try:
        egress.check_url(value, base=True)
    except egress.EgressRefused as exc:
        raise forms.ValidationError(str(exc)) from None


class BaseURLField(forms.URLField):
    """An https endpoint that requests go below: the egress policy applies, the slash is
    dropped."""

    default_validators = [*forms.URLField.default_validators, check_base_url]

    def to_python(self, value: Any) -> str:
        return (super().to_python(value) or "").rstrip("/")


def clean_options(form_class: type[AdapterOptions], options: Mapping[str, Any] | None) -> dict:
    """Stored options cleaned by the adapter's form, blank ones (and unticked boxes) dropped;
    ValueError names the first option that is unknown or invalid (the admin shows it)."""
    options = dict(options or {})
    if not options:
        return {}
    known = form_class.base_fields
    unknown = [name for name in options if name not in known]
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ValueError(f"Unknown option '{unknown[0]}' (allowed: {allowed}).")
    form = form_class(data=options)
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise ValueError(f"Option '{name}': {' '.join(str(e) for e in errors)}")
    return {
        name: value
        for name, value in form.cleaned_data.items()
        if name in options and value is not None and value != "" and value is not False
    }
