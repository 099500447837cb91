from django.core.paginator import Paginator
from django.shortcuts import render

from generation.models import Generation, GenerationImage
from orgs.access import org_member_required


@org_member_required
def index(request):
    """Finished images: a member's own, an admin's whole organization's (PRD §4.3)."""
    images = (
        GenerationImage.objects.filter(
            status=GenerationImage.Status.DONE,
            generation__in=Generation.objects.visible_to(request.membership),
        )
        .select_related("generation__user")
        .order_by("-finished_at", "-pk")
    )
    page = Paginator(images, 24).get_page(request.GET.get("page"))
    return render(request, "gallery/index.html", {"page": page})
