from django.shortcuts import render

from orgs.access import org_member_required


@org_member_required
def index(request):
    return render(request, "gallery/index.html")
