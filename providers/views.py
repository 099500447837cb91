from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from orgs.access import org_admin_required
from providers.admin import admin_change_url, report_connection_test
from providers.health import provider_health
from providers.models import KIND_LABELS, Provider


@org_admin_required
def index(request):
    providers = list(
        Provider.objects.for_org(request.org)
        .select_related("catalogue")
        .order_by("kind", "priority", "pk")
    )
    health = provider_health(providers)
    for provider in providers:
        provider.health = health[provider.pk]
        provider.edit_url = admin_change_url(provider)
    groups = [
        (label, [p for p in providers if p.kind == kind]) for kind, label in KIND_LABELS.items()
    ]
    return render(request, "providers/index.html", {"groups": groups})


@require_POST
@org_admin_required
def test_connection(request, public_id):
    provider = get_object_or_404(
        Provider.objects.for_org(request.org).select_related("catalogue"), public_id=public_id
    )
    report_connection_test(request, provider, deep=request.POST.get("deep") == "1")
    return redirect("providers:index")
