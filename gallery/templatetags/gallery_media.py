from django import template

from gallery.models import Collection
from lib.urls import uuid_url

register = template.Library()


@register.inclusion_tag("gallery/_lightbox.html", takes_context=True)
def lightbox(context):
    """The lightbox, with the organization's collections to add the shown image to."""
    request = context["request"]
    membership = getattr(request, "membership", None)
    collections = Collection.objects.for_org(membership.org) if membership else []
    return {"request": request, "collections": collections, "csrf_token": context.get("csrf_token")}


@register.filter
def duration(start, end) -> str:
    """`end - start` in words a person reads at a glance: "850 ms", "12.4 s", "3 min 5 s"."""
    if not (start and end):
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


@register.simple_tag
def url_for(name: str, public_id) -> str:
    """`{% url name public_id %}` for a URL taking one UUID, without resolving the URLconf each
    time (lib.urls): for markup repeated per image."""
    return uuid_url(name, public_id)
