import uuid

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from gallery import services
from gallery.forms import GalleryFilterForm
from gallery.models import Collection, CollectionItem, Favourite
from gallery.search import Cursor, find_images, visible_images
from generation.models import Generation, GenerationImage
from library.models import ReferenceAnalysis
from orgs.access import org_member_required
from providers.models import ProviderAttempt


@org_member_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def index(request):
    """Finished images, newest first or by generation, filtered; admins see the organization's
    (PRD §4.3). Pages load with a keyset: "Load more" appends the next one in place (htmx) and is
    a real link without JavaScript."""
    form = GalleryFilterForm(request.GET, membership=request.membership)
    query = form.query()
    after = Cursor.parse(request.GET.get("cursor"))
    page = find_images(request.membership, query, after)
    # By generation, a header starts each generation (not again when "Load more" continues one).
    previous = after.first if (after and query.grouped) else None
    for image in page.images:
        image.starts_group = query.grouped and image.generation_id != previous
        previous = image.generation_id
    context = {
        "form": form,
        "query": query,
        "page": page,
        "next_cursor": str(page.next_cursor) if page.next_cursor else "",
        "continued": after is not None,
        "collections": Collection.objects.for_org(request.org),
        "collection": form.cleaned_data.get("collection"),  # valid fields, even beside errors
    }
    template = "gallery/index.html"
    if request.htmx and request.htmx.target == "load-more":
        template += "#page"
    elif request.htmx and request.htmx.target == "gallery-results":
        template += "#results"
    return render(request, template, context)


@org_member_required
@require_GET
def image_detail(request, public_id):
    """How an image was made, at a stable URL: prompts, inputs and their descriptions, models
    and the prompt writers tried, cost, timings and who made it."""
    image = get_object_or_404(
        visible_images(request.membership).select_related(
            "generation__user", "generation__provider__catalogue"
        ),
        public_id=public_id,
    )
    generation = image.generation
    products = list(generation.products.order_by("pk"))
    references = list(generation.references.order_by("pk"))
    descriptions = dict(
        ReferenceAnalysis.objects.filter(
            org_id=generation.org_id, sha256__in=[s.sha256 for s in products + references]
        ).values_list("sha256", "description")
    )
    for source in products + references:
        source.description = descriptions.get(source.sha256, "")
    siblings = list(
        visible_images(request.membership)
        .filter(generation=generation, status=GenerationImage.Status.DONE)
        .order_by("index")
    )
    context = {
        "image": image,
        "generation": generation,
        "products": products,
        "references": references,
        "attempts": ProviderAttempt.objects.filter(
            generation_id=generation.pk, purpose__in=("vision", "variants")
        )
        .select_related("provider")
        .order_by("created_at", "pk"),
        "siblings": siblings,
        "generation_visible": Generation.objects.visible_to(request.membership)
        .filter(pk=generation.pk)
        .exists(),
        "is_favourite": image.pk in _favourite_ids(request, [image]),
        "collections": Collection.objects.for_org(request.org),
        "in_collections": _collected(image, request.membership),
    }
    return render(request, "gallery/image.html", context)


def _collected(image, membership) -> list[CollectionItem]:
    """The collections holding the image, each marked whether this person may take it out."""
    items = list(
        CollectionItem.objects.filter(image=image)
        .select_related("collection")
        .order_by("collection__name", "collection__pk")
    )
    for item in items:
        item.removable = item.can_be_removed_by(membership)
    return items


def _favourite_ids(request, images) -> set[int]:
    return set(
        Favourite.objects.filter(user=request.user, image__in=images).values_list(
            "image_id", flat=True
        )
    )


@org_member_required
@require_GET
def reuse(request, public_id):
    """Generate, prefilled with the image's generation: settings and library images; Vary
    (`vary`) starts from this image's own prompt instead."""
    image = get_object_or_404(
        visible_images(request.membership).select_related("generation__provider"),
        public_id=public_id,
    )
    generation = image.generation
    prompt = image.prompt if request.resolver_match.url_name == "vary" else None
    return redirect(f"{reverse('generation:generate')}?{generation.reuse_query(prompt=prompt)}")


@org_member_required
@require_POST
def favourite(request, public_id):
    image = get_object_or_404(visible_images(request.membership), public_id=public_id)
    is_favourite = services.toggle_favourite(user=request.user, image=image)
    if request.htmx:
        return render(
            request,
            "gallery/_favourite.html",
            {"image": image, "is_favourite": is_favourite},
        )
    return _back(request, "gallery:image", image.public_id)


@org_member_required
@require_GET
def collections(request):
    context = {
        "collections": Collection.objects.for_org(request.org)
        .select_related("created_by")
        .with_covers(),
    }
    return render(request, "gallery/collections.html", context)


@org_member_required
@require_POST
def create_collection(request):
    images = _posted_images(request)  # all visible, or a 404 before anything is created
    try:
        collection = services.create_collection(
            membership=request.membership, name=request.POST.get("name", "")
        )
    except services.CollectionError as exc:
        messages.error(request, str(exc))
        return _back(request, "gallery:collections")
    if images:
        services.add_to_collection(
            collection=collection, images=images, membership=request.membership
        )
    messages.success(request, f"Created the collection “{collection}”.")
    return _back(request, "gallery:collections")


@org_member_required
@require_POST
def rename_collection(request, public_id):
    collection = get_object_or_404(Collection.objects.for_org(request.org), public_id=public_id)
    try:
        services.rename_collection(
            collection=collection, membership=request.membership, name=request.POST.get("name", "")
        )
    except services.CollectionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Renamed the collection to “{collection}”.")
    return redirect("gallery:collections")


@org_member_required
@require_POST
def delete_collection(request, public_id):
    collection = get_object_or_404(Collection.objects.for_org(request.org), public_id=public_id)
    services.delete_collection(collection=collection, membership=request.membership)
    messages.success(request, f"Deleted the collection “{collection}”; its images are kept.")
    return redirect("gallery:collections")


@org_member_required
@require_POST
def collect(request):
    """Add the posted images to a collection, or take them out (`remove`)."""
    collection = get_object_or_404(
        Collection.objects.for_org(request.org), public_id=_uuid_or_404(request.POST, "collection")
    )
    images = _posted_images(request)
    if request.POST.get("remove"):
        try:
            count = services.remove_from_collection(
                collection=collection, images=images, membership=request.membership
            )
        except services.CollectionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Removed {_images(count)} from “{collection}”.")
    else:
        count = services.add_to_collection(
            collection=collection, images=images, membership=request.membership
        )
        messages.success(request, f"Added {_images(count)} to “{collection}”.")
    return _back(request, "gallery:index")


def _images(count: int) -> str:
    return f"{count} image{'s' if count != 1 else ''}"


def _uuid_or_404(data, name):
    try:
        return uuid.UUID(data.get(name, ""))
    except ValueError:
        raise Http404 from None


def _posted_images(request) -> list[GenerationImage]:
    """The posted image ids, every one visible to the person, or a 404 for the whole request."""
    try:
        wanted = {uuid.UUID(value) for value in request.POST.getlist("images")}
    except ValueError:
        raise Http404 from None
    images = list(visible_images(request.membership).filter(public_id__in=wanted))
    if len(images) != len(wanted):
        raise Http404
    return images


def _back(request, fallback: str, *args):
    """To the page the form was on (a local URL only), else `fallback`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(fallback, *args)
