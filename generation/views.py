from django.shortcuts import render

from orgs.access import org_member_required


@org_member_required
def generate(request):
    return render(request, "generation/generate.html")


@org_member_required
def estimate(request):
    return render(request, "generation/generate.html")


@org_member_required
def history(request):
    return render(request, "generation/history.html")
