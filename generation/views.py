from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from credits import limits
from credits import services as credit_services
from generation import live, tasks
from generation.consumers import socket_path
from generation.forms import ROLES, GenerateForm
from generation.models import Generation
from generation.pipeline.start import GenerationError, TooManyGenerations, check_generate_rate
from lib.search_text import search_text
from library import services as library
from library.models import SourceImage
from library.picker import picker_context
from library.uploads import ingest_image
from orgs.access import org_member_required
from providers.models import Provider
from providers.org_registry import providers_for

# GET parameters that prefill the Generate page (Reuse and Vary links, the htmx partials).
PREFILL = ("prompt", "model", "aspect_ratio", "quality", "count")
HISTORY_PAGE_SIZE = 20
REFUSALS = (credit_services.InsufficientCredits, limits.MonthlyLimitReached, GenerationError)


def refusal(request, exc: Exception) -> str:
    """Why a generation was refused, with what this person can do about a short balance."""
    if not isinstance(exc, credit_services.InsufficientCredits):
        return str(exc)
    if request.membership.is_admin:
        return f"{exc} Request credits from the dashboard, or generate fewer images."
    return f"{exc} Ask an admin to request more credits, or generate fewer images."


def _generate_form(request, data=None, files=None, prefill=None) -> GenerateForm:
    available = providers_for(request.org.pk)
    prefill = request.GET if prefill is None else prefill
    initial = {key: value for key in PREFILL if (value := prefill.get(key))}
    return GenerateForm(
        data,
        files,
        initial=initial,
        org=request.org,
        image_models=available.images_for(request.membership),
        default_model=available.default_image_for(request.membership),
    )


def _render_generate(
    request,
    form,
    *,
    template="generation/generate.html",
    status=200,
    refusal="",
    chosen=None,
    kept=0,
):
    """The page; `chosen` holds the library images picked per role (ids), `kept` counts the
    uploads of a form that came back which are now picked from the library instead."""
    chosen = chosen or {}
    pickers = {
        role: picker_context(
            request.org, role, selected=chosen.get(role, request.GET.getlist(f"library_{role}"))
        )
        for role in ROLES
    }
    context = {
        "form": form,
        "estimate": form.estimate(
            credit_services.balance_of(request.org),
            usage=limits.monthly_usage(request.membership)
            if request.membership.monthly_limit is not None
            else None,
        ),
        "refusal": refusal,
        "pickers": pickers,
        "kept": kept,
    }
    return render(request, template, context, status=status)


@org_member_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
def generate(request):
    if request.method == "GET":
        form = _generate_form(request)
        if request.htmx and request.htmx.target == "model-options":
            return _render_generate(request, form, template="generation/generate.html#options")
        return _render_generate(request, form)

    try:
        check_generate_rate(request.membership)  # before any file is looked at
    except TooManyGenerations as exc:
        form = _generate_form(request, prefill=request.POST)  # keeps what they wrote
        chosen = {role: request.POST.getlist(f"library_{role}") for role in ROLES}
        response = _render_generate(request, form, status=429, refusal=str(exc), chosen=chosen)
        response["Retry-After"] = str(exc.retry_after)
        return response
    form = _generate_form(request, request.POST, request.FILES)
    valid = form.is_valid()
    uploads = [*form.fields["products"].accepted, *form.fields["references"].accepted]
    try:
        library.check_upload_budget(request.membership, uploads)  # before any is decoded
    except ValidationError as exc:
        chosen = {role: request.POST.getlist(f"library_{role}") for role in ROLES}
        refused = " ".join(exc.messages)
        return _render_generate(request, form, status=429, refusal=refused, chosen=chosen)
    if valid:
        data = form.cleaned_data
        try:
            generation = tasks.generate(
                membership=request.membership,
                provider=data["model"],
                prompt=data["prompt"],
                count=data["count"],
                aspect_ratio=data["aspect_ratio"],
                quality=data["quality"],
                products=form.sources("products"),
                references=form.sources("references"),
            )
        except REFUSALS as exc:
            form.add_error(None, refusal(request, exc))
        else:
            return redirect("generation:detail", generation.public_id)
    chosen, kept = _keep_uploads(request, form)
    return _render_generate(request, form, status=422, chosen=chosen, kept=kept)


def _keep_uploads(request, form) -> tuple[dict[str, list[str]], int]:
    """A form that comes back keeps its photos: every upload that passed its checks goes to the
    brand library and comes back picked there (browsers forget chosen files). Returns the picked
    ids per role and how many uploads were kept."""
    chosen, kept = {}, 0
    for role in ROLES:
        ids = request.POST.getlist(f"library_{role}")
        for upload in form.fields[role].accepted:
            try:
                image = ingest_image(upload)
            except ValidationError:
                continue  # the form says what is wrong with it
            try:
                source = library.store_image(org=request.org, user=request.user, image=image)
            finally:
                if image is not upload:
                    image.close()
            ids.append(str(source.public_id))
            kept += 1
        chosen[role] = ids
    return chosen, kept


@org_member_required
@require_GET
def estimate(request):
    """The live credit estimate: count × the selected model's cost, against the balance."""
    return _render_generate(
        request, _generate_form(request), template="generation/generate.html#estimate"
    )


@org_member_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def history(request):
    query = search_text(request.GET.get("q"), 200)
    generations = (
        Generation.objects.visible_to(request.membership)
        .select_related("user", "provider")
        .prefetch_related("products", "references")  # for the Reuse links
        .order_by("-created_at", "-pk")
    )
    if query:
        generations = generations.filter(prompt__icontains=query)
    page = Paginator(generations, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    template = "generation/history.html"
    if request.htmx and request.htmx.target == "history-results":
        template += "#results"
    return render(request, template, {"page": page, "query": query})


@org_member_required
def detail(request, public_id):
    """The generation's page: rendered from the database, so a reload shows the current state;
    the websocket (generation/consumers.py) then keeps the cards and status line up to date."""
    described = SourceImage.objects.with_descriptions().order_by("pk")
    generation = get_object_or_404(
        Generation.objects.visible_to(request.membership)
        .select_related("user", "provider")
        .prefetch_related(
            Prefetch("products", queryset=described), Prefetch("references", queryset=described)
        ),
        public_id=public_id,
    )
    images = list(generation.images.order_by("index"))
    return render(
        request,
        "generation/detail.html",
        {
            **live.status_context(generation, images),
            "images": images,
            "products": generation.products.all(),
            "references": generation.references.all(),
            "aspect": live.aspect_css(generation.aspect_ratio),
            "ws_path": socket_path(generation.public_id, request.session.session_key),
        },
    )


@org_member_required
@require_http_methods(["GET", "POST"])
def again(request, public_id):
    """Run a generation again with the same settings and images, after showing what it costs."""
    generation = get_object_or_404(
        Generation.objects.visible_to(request.membership).select_related("provider"),
        public_id=public_id,
    )
    products = list(generation.products.order_by("pk"))
    references = list(generation.references.order_by("pk"))
    model = _current_model(request, generation)
    balance = credit_services.balance_of(request.org)
    problem = ""
    if model is None:
        problem = (
            f"{generation.provider_name} is no longer available to you; Reuse to pick another "
            "model."
        )
    elif gone := [s.label for s in products + references if s.is_deleted]:
        problem = f"{', '.join(gone)} was deleted from the library; Reuse to choose other images."
    elif model.credit_cost * generation.count > balance:
        problem = (
            f"Not enough credits: this needs {model.credit_cost * generation.count} and your "
            f"organization has {balance}."
        )
    retry_after = None
    if request.method == "POST" and not problem:
        try:
            check_generate_rate(request.membership)
            new = tasks.generate(
                membership=request.membership,
                provider=model,
                prompt=generation.prompt,
                count=generation.count,
                aspect_ratio=generation.aspect_ratio,
                quality=generation.quality,
                products=products,
                references=references,
            )
        except TooManyGenerations as exc:
            problem, retry_after = str(exc), exc.retry_after
        except REFUSALS as exc:
            problem = refusal(request, exc)
        else:
            return redirect("generation:detail", new.public_id)
    context = {
        "generation": generation,
        "model": model,
        "products": products,
        "references": references,
        "balance": balance,
        "problem": problem,
    }
    status = 200 if request.method == "GET" or not problem else 429 if retry_after else 422
    response = render(request, "generation/again.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _current_model(request, generation: Generation):
    """The generation's image model as it is now, if this person may still choose it."""
    offered = {p.pk for p in providers_for(request.org.pk).images_for(request.membership)}
    if generation.provider_id not in offered:
        return None
    return (
        Provider.objects.enabled()
        .select_related("catalogue")
        .filter(pk=generation.provider_id, org_id=request.org.pk)
        .first()
    )
