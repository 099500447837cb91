"""What a generation may ask of an image model, written once.

The Generate form shows these errors next to its fields (generation/forms.py), its live estimate
uses the count rule, and start_generation refuses with the same errors whatever calls it. Each
check returns a ValidationError, or None when the value is allowed.
"""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from providers.models import Provider

# The upload fields and the words for one and several of their files.
FILE_NOUNS = {
    "products": ("product photo", "product photos"),
    "references": ("reference image", "reference images"),
}
NO_PRODUCTS = "Add at least one product photo."
NOT_OFFERED = forms.ChoiceField.default_error_messages["invalid_choice"]


def count_error(count: int) -> ValidationError | None:
    """From 1 to NERSTUDIO_MAX_IMAGES_PER_GENERATION images."""
    limits = MinValueValidator(1), MaxValueValidator(settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION)
    for validator in limits:
        try:
            validator(count)
        except ValidationError as exc:
            return exc
    return None


def option_error(offered: list[str], value: str) -> ValidationError | None:
    """An aspect ratio or quality the model offers; none for a model that offers none."""
    if value in offered or not (value or offered):
        return None
    return ValidationError(NOT_OFFERED, code="invalid_choice", params={"value": value})


def files_error(provider: Provider, field: str, chosen: int) -> ValidationError | None:
    """At least one product photo; at most as many product photos and reference images as the
    model takes."""
    if field == "products" and chosen < 1:
        return ValidationError(NO_PRODUCTS, code="required")
    most = provider.max_product_images if field == "products" else provider.max_reference_images
    if chosen <= most:
        return None
    one, several = FILE_NOUNS[field]
    if not most:
        return ValidationError(f"{provider.name} takes no {several}.", code="too_many_files")
    noun = one if most == 1 else several
    return ValidationError(
        f"{provider.name} takes at most {most} {noun}; you chose {chosen}.", code="too_many_files"
    )


def request_errors(
    provider: Provider,
    *,
    count: int,
    aspect_ratio: str,
    quality: str,
    products: int,
    references: int,
) -> list[ValidationError]:
    """Every rule a generation request breaks, for `provider`; empty when it may run."""
    errors = [
        count_error(count),
        option_error(provider.aspect_ratios, aspect_ratio),
        option_error(provider.quality_levels, quality),
        files_error(provider, "products", products),
        files_error(provider, "references", references),
    ]
    return [error for error in errors if error is not None]
