from django import template

from gallery.models import Collection

register = template.Library()


@register.inclusion_tag("gallery/_lightbox.html", takes_context=True)
def lightbox(context):
    """The lightbox, with the organization's collections to add the shown image to."""
    request = context["request"]
    membership = getattr(request, "membership", None)
    collections = Collection.objects.for_org(membership.org) if membership else []
    return {"request": request, "collections": collections, "csrf_token": context.get("csrf_token")}
