from django.shortcuts import get_object_or_404, render

from generation.models import Generation
from orgs.access import org_member_required


@org_member_required
def detail(request, public_id):
    generation = get_object_or_404(
        Generation.objects.visible_to(request.membership), public_id=public_id
    )
    images = generation.images.order_by("index")
    return render(request, "generation/detail.html", {"generation": generation, "images": images})
