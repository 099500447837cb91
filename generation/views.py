from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from credits import services as credit_services
from generation import live, tasks
from generation.forms import GenerateForm
from generation.models import Generation
from generation.pipeline.start import GenerationError, TooManyGenerations, check_generate_rate
from orgs.access import org_member_required
from providers.org_registry import providers_for

# GET parameters that prefill the Generate page ("Reuse prompt" links, the htmx partials).
PREFILL = ("prompt", "model", "aspect_ratio", "quality", "count")
HISTORY_PAGE_SIZE = 20


def _generate_form(request, data=None, files=None, prefill=None) -> GenerateForm:
    available = providers_for(request.org.pk)
    prefill = request.GET if prefill is None else prefill
    initial = {key: value for key in PREFILL if (value := prefill.get(key))}
    return GenerateForm(
        data,
        files,
        initial=initial,
        image_models=available.images_for(request.membership),
        default_model=available.default_image_for(request.membership),
    )


def _render_generate(request, form, *, template="generation/generate.html", status=200, refusal=""):
    context = {
        "form": form,
        "estimate": form.estimate(credit_services.balance_of(request.org)),
        "refusal": refusal,
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
        response = _render_generate(request, form, status=429, refusal=str(exc))
        response["Retry-After"] = str(exc.retry_after)
        return response
    form = _generate_form(request, request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            generation = tasks.generate(
                membership=request.membership,
                provider=data["model"],
                prompt=data["prompt"],
                count=data["count"],
                aspect_ratio=data["aspect_ratio"],
                quality=data["quality"],
                products=data["products"],
                references=data["references"],
            )
        except (credit_services.InsufficientCredits, GenerationError) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("generation:detail", generation.public_id)
    return _render_generate(request, form, status=422)


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
    query = request.GET.get("q", "").strip()[:200]
    generations = (
        Generation.objects.visible_to(request.membership)
        .select_related("user", "provider")
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
