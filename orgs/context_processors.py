from django.conf import settings

from orgs.access import get_membership


def membership(request):
    return {
        "membership": get_membership(request),
        "dev_signin": settings.NERSTUDIO_DEV_SIGNIN,
    }
