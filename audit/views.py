from django.core.paginator import Paginator
from django.shortcuts import render

from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from orgs.access import org_admin_required

PER_PAGE = 50


@org_admin_required
def index(request):
    """The organization's audit log, newest first: its admins' actions, and the platform's on
    it (top-ups, decisions on its requests, its provider rows) as "NER Studio". The catalogue's
    changes concern every organization and are the operators' (the admin)."""
    events = AuditEvent.objects.for_org(request.org)
    form = AuditFilterForm(request.GET, events=events)
    page = Paginator(form.filter(events), PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "filters": form.query(), "org": request.org}
    return render(request, "audit/index.html", context)
