"""Analysing the references and writing one prompt per image (the run_generation task).

References are described by the vision chain (in parallel, cached per organization by content
hash); the prompt writers then turn the member's prompt and those descriptions into one variant
per image. Neither may fail the generation: a reference nobody could describe is used without its
description, and when every prompt writer failed the prompts are built-in variations of the
member's own. What the member should know about such degraded work is kept as notices.

A generation that costs nothing (an own-key image model priced at 0 credits) uses only the
organization's own-key prompt writers and vision models: the platform's catalogue ones run on the
platform's keys, for generations that pay. Reference descriptions cached from earlier runs are
used either way.
"""

from typing import cast

from django.db.models import Case, F, Value, When
from django.utils import timezone

from generation import live
from generation.models import Generation, GenerationImage
from library.models import ReferenceAnalysis
from providers import services as provider_services
from providers.adapters.types import VariantsRequest
from providers.chain import ChainFailed
from providers.fairshare import provider_slot
from providers.local.llm import local_variants
from providers.models import Provider

Status = Generation.Status
BUILT_IN_WRITER = "Built-in variations"
PALETTE_COLOURS = 6  # sent to the image model


def write_prompts(generation_id: int) -> list[int]:
    """Analyse the references and write the image prompts, within the organization's share of
    provider calls (or lib.tasks.TryLater). Returns the images to submit next; none when the
    generation is already past these stages (a redelivered message)."""
    org_id = (
        Generation.objects.filter(
            pk=generation_id, status__in=[Status.QUEUED, Status.ANALYSING, Status.WRITING]
        )
        .values_list("org_id", flat=True)
        .first()
    )
    if org_id is None:
        return []  # already past these stages: a redelivered message
    with provider_slot(org_id):  # the organization's share of provider calls, or try later
        return _write_prompts(generation_id)


def _write_prompts(generation_id: int) -> list[int]:
    claimed = Generation.objects.filter(pk=generation_id, status=Status.QUEUED).update(
        status=Status.ANALYSING
    )
    generation = Generation.objects.select_related("org").get(pk=generation_id)
    if not claimed and generation.status not in (Status.ANALYSING, Status.WRITING):
        return []  # already past these stages: a redelivered message
    live.push_generation(generation)

    notes, palette, notices = _analyse_references(generation)
    Generation.objects.filter(pk=generation.pk).update(
        status=Status.WRITING,
        reference_notes=notes,
        palette=palette,
        notices=notices,
        updated_at=timezone.now(),
    )
    live.push_generation(generation, sources=True)  # the references' descriptions are in

    variants, writer, more_notices = _variants(generation, notes)
    images = list(generation.images.order_by("index"))
    prompts = [When(pk=image.pk, then=Value(v)) for image, v in zip(images, variants, strict=True)]
    waiting = GenerationImage.objects.filter(
        generation=generation, status=GenerationImage.Status.WAITING
    )
    field = GenerationImage._meta.get_field("prompt")
    waiting.update(prompt=Case(*prompts, default=F("prompt"), output_field=field))  # one statement
    Generation.objects.filter(pk=generation.pk, status=Status.WRITING).update(
        status=Status.GENERATING,
        prompt_writer=writer,
        notices=notices + more_notices,
        updated_at=timezone.now(),
    )
    live.push_generation(generation)
    return [image.pk for image in images]


def _own_keys_only(generation: Generation) -> bool:
    """A free generation may not run the platform's (catalogue) prompt writers and vision
    models, which the platform pays for: only the organization's own-key ones."""
    return generation.credit_cost == 0


def _variants(generation: Generation, notes: list[str]) -> tuple[tuple[str, ...], str, list[str]]:
    """N prompts, who wrote them, and what the member should know. The last resort is never to
    fail: when every prompt writer failed, deterministic variations of the member's own prompt."""
    n = generation.count
    own_keys_only = _own_keys_only(generation)
    products = tuple(
        f"{p.format} photo, {p.width}×{p.height} px" for p in generation.products.all()
    )
    request = VariantsRequest(
        prompt=generation.prompt, n=n, references=tuple(notes), products=products
    )
    try:
        result = provider_services.write_variants(
            request,
            org_id=generation.org_id,
            generation_id=generation.pk,
            own_keys_only=own_keys_only,
        )
    except ChainFailed:
        if own_keys_only:
            notice = (
                "This image model is free, and free image models use only your organization's "
                "own prompt writers (on its own API keys); none answered, so the prompts are "
                "variations of your own prompt."
            )
        else:
            notice = (
                "No prompt writer could answer, so the prompts are variations of your own prompt."
            )
        return local_variants(request), BUILT_IN_WRITER, [notice]
    writer_id = cast(int, result.provider_id)  # the chain runs on Provider rows: their pks
    writer = Provider.objects.filter(pk=writer_id).values_list("name", flat=True)
    notices = []
    if varied := result.value.varied:
        notices.append(
            f"{n - varied} of {n} prompts came from the prompt writer; the other {varied} are "
            "variations of them."
        )
    return result.value.variants, writer.first() or "", notices


def _analyse_references(generation: Generation) -> tuple[list[str], list[str], list[str]]:
    """Descriptions of the references, from the per-org cache or the vision chain (in parallel),
    their palette (at most PALETTE_COLOURS, the first reference's first), and a notice for each
    reference no vision provider could describe: it is used without its description rather than
    failing the whole generation."""
    through = Generation.references.through.objects.filter(generation_id=generation.pk)
    references = [row.sourceimage for row in through.select_related("sourceimage").order_by("pk")]
    cached = {
        a.sha256: (a.description, a.palette)
        for a in ReferenceAnalysis.objects.filter(
            org_id=generation.org_id, sha256__in=[r.sha256 for r in references]
        )
    }
    missing = list({r.sha256: r for r in references if r.sha256 not in cached}.values())
    images = []
    for reference in missing:
        with reference.file.open("rb") as fh:
            images.append(fh.read())
    own_keys_only = _own_keys_only(generation)
    outcomes = provider_services.describe_references(
        org_id=generation.org_id,
        images=images,
        generation_id=generation.pk,
        own_keys_only=own_keys_only,
    )
    for reference, outcome in zip(missing, outcomes, strict=True):
        if isinstance(outcome, ChainFailed):
            continue  # the attempts are in the lineage; the notice below tells the member
        ReferenceAnalysis.objects.get_or_create(
            org_id=generation.org_id,
            sha256=reference.sha256,
            defaults={
                "description": outcome.value.description,
                "palette": list(outcome.value.palette),
                "provider_id": outcome.provider_id,
            },
        )
        cached[reference.sha256] = (outcome.value.description, list(outcome.value.palette))
    why = (
        " (free image models use only your organization's own vision models, on its own API keys)"
        if own_keys_only
        else ""
    )
    notices = [
        f"Reference {number} could not be analysed{why}; it was used without its description."
        for number, r in enumerate(references, start=1)
        if r.sha256 not in cached
    ]
    described = [cached[r.sha256] for r in references if r.sha256 in cached]
    colours = (colour for _, palette in described for colour in palette)  # "#rrggbb" each
    palette = list(dict.fromkeys(colours))[:PALETTE_COLOURS]
    return [description for description, _ in described], palette, notices
