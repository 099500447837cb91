from django.shortcuts import get_object_or_404, render

from generation import live
from generation.models import Generation
from orgs.access import org_member_required


@org_member_required
def detail(request, public_id):
    """The generation's page: rendered from the database, so a reload shows the current state;
    the websocket (generation/consumers.py) then keeps the cards and status line up to date."""
    generation = get_object_or_404(
        Generation.objects.visible_to(request.membership).select_related("user"),
        public_id=public_id,
    )
    images = list(generation.images.order_by("index"))
    return render(
        request,
        "generation/detail.html",
        {
            **live.status_context(generation, images),
            "images": images,
            "aspect": live.aspect_css(generation.aspect_ratio),
            "ws_path": f"/ws/generations/{generation.public_id}/",
        },
    )
