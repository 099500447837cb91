from django import template
from django.db.models import Exists, OuterRef, Q

from generation.models import Generation
from library.models import SourceImage

register = template.Library()


@register.simple_tag
def generation_sources(generation: Generation) -> dict[str, list[SourceImage]]:
    """The product and reference images a generation used, in one query:
    `{"products": [...], "references": [...]}`."""
    used = {
        role: getattr(Generation, role).through.objects.filter(generation_id=generation.pk)
        for role in ("products", "references")
    }
    sources = (
        SourceImage.objects.filter(
            Q(pk__in=used["products"].values("sourceimage_id"))
            | Q(pk__in=used["references"].values("sourceimage_id"))
        )
        .annotate(
            is_product=Exists(used["products"].filter(sourceimage_id=OuterRef("pk"))),
            is_reference=Exists(used["references"].filter(sourceimage_id=OuterRef("pk"))),
        )
        .order_by("pk")
    )
    grouped = {"products": [], "references": []}
    for source in sources:
        if source.is_product:
            grouped["products"].append(source)
        if source.is_reference:
            grouped["references"].append(source)
    return grouped
