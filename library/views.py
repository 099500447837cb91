from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from lib.search_text import search_text
from lib.serving import serve_file
from library import services
from library.forms import DescribeImageForm, LibrarySearchForm, LibraryUploadForm
from library.models import SourceImage, Tag
from library.picker import picker_context
from library.uploads import ingest_image
from orgs.access import org_admin_required, org_member_or_404, org_member_required

PAGE_SIZE = 48
ROLES = ("products", "references")


def _library(request):
    return SourceImage.objects.for_org(request.org).in_library()


@org_member_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def index(request):
    """The brand library: every product and reference image the organization uploaded, recent
    first, searchable by name, tag and vision description."""
    form = LibrarySearchForm(request.GET)
    search = form.cleaned_data if form.is_valid() else {}
    images = _library(request)
    if not (search.get("archived") and request.membership.is_admin):
        images = images.filter(archived_at__isnull=True)
    if search.get("tag"):
        images = images.filter(tags__name=search["tag"])
    images = (
        images.matching(search.get("q", "").strip())
        .with_descriptions()
        .prefetch_related("tags")
        .recent_first()
    )
    page = Paginator(images, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "tag": search.get("tag", ""),
        "tags": Tag.objects.filter(org=request.org),
        "upload_form": LibraryUploadForm(),
    }
    template = "library/index.html"
    if request.htmx and request.htmx.target == "library-results":
        template += "#results"
    return render(request, template, context)


@org_member_required
@require_GET
def picker(request):
    """Generate's library picker for one role, searched (htmx), keeping what is chosen."""
    role = request.GET.get("role")
    if role not in ROLES:
        role = "products"
    context = picker_context(
        request.org,
        role,
        selected=request.GET.getlist(f"library_{role}"),
        text=search_text(request.GET.get("library_q"), 100),
    )
    return render(request, "library/_picker.html", context)


@org_member_required
@require_POST
def upload(request):
    """Add images to the library without generating."""
    form = LibraryUploadForm(request.POST, request.FILES)
    if not form.is_valid():  # each bad file named; the good ones are still added
        for error in form.errors.get("images", []):
            messages.error(request, error)
    try:
        services.check_upload_budget(request.membership, form.fields["images"].accepted)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("library:index")
    added = 0
    for upload in form.fields["images"].accepted:
        try:
            image = ingest_image(upload)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            continue
        try:
            services.store_image(org=request.org, user=request.user, image=image)
            added += 1
        finally:
            image.close()
    if added:
        messages.success(request, f"Added {added} image{'s' if added != 1 else ''} to the library.")
    return redirect("library:index")


@org_member_required
@require_GET
def detail(request, public_id):
    image = get_object_or_404(
        _library(request).with_descriptions().prefetch_related("tags"), public_id=public_id
    )
    form = DescribeImageForm(
        initial={"name": image.name, "tags": ", ".join(t.name for t in image.tags.all())}
    )
    return _render_detail(request, image, form)


def _render_detail(request, image, form, status=200):
    used = image.used_as_product.count() + image.used_as_reference.count()
    return render(
        request, "library/detail.html", {"image": image, "form": form, "used": used}, status=status
    )


@org_admin_required
@require_POST
def describe(request, public_id):
    image = get_object_or_404(
        _library(request).with_descriptions().prefetch_related("tags"), public_id=public_id
    )
    form = DescribeImageForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, image, form, status=422)
    services.describe_image(image=image, **form.cleaned_data)
    messages.success(request, f"Saved “{image.label}”.")
    return redirect("library:detail", image.public_id)


@org_admin_required
@require_POST
def archive(request, public_id):
    image = get_object_or_404(_library(request), public_id=public_id)
    if request.POST.get("restore"):
        services.restore_image(image=image)
        messages.success(request, f"“{image.label}” is back in the library.")
    else:
        services.archive_image(image=image)
        messages.success(
            request, f"Archived “{image.label}”: Generate no longer offers it. Past work keeps it."
        )
    return redirect("library:detail", image.public_id)


@org_admin_required
@require_POST
def delete(request, public_id):
    image = get_object_or_404(_library(request), public_id=public_id)
    try:
        services.delete_image(image=image)
    except services.LibraryError as exc:
        messages.error(request, str(exc))
        return redirect("library:detail", image.public_id)
    messages.success(
        request,
        f"Deleted “{image.label}”. Generations that used it still show what they made.",
    )
    return redirect("library:index")


@require_safe
@org_member_or_404
def file(request, public_id):
    image = get_object_or_404(_library(request).exclude(file=""), public_id=public_id)
    return serve_file(
        image.file.name,
        filename=_filename(request, image, image.file.name),
        download=request.GET.get("download") == "1",
    )


@require_safe
@org_member_or_404
def thumbnail(request, public_id):
    image = get_object_or_404(_library(request).exclude(file=""), public_id=public_id)
    name = image.thumbnail.name or image.file.name
    return serve_file(name, filename=_filename(request, image, name))


def _filename(request, image: SourceImage, name: str) -> str:
    stem = slugify(image.label)[:48].strip("-") or image.sha256[:12]
    return f"{slugify(request.org.name)[:32] or 'library'}-{stem}.{name.rsplit('.', 1)[-1]}"
