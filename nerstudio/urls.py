from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.static import serve

from orgs import views as org_views


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", org_views.home, name="home"),
    path("healthz/", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("orgs.urls")),
    path("", include("generation.urls")),
    path("", include("gallery.urls")),
    path("", include("providers.urls")),
]


def media(request, path):
    """Files on local storage (the embedded default). Names are content hashes; with R2/S3 the
    browser and providers get presigned URLs instead and this route does not exist."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


if not settings.NERSTUDIO_S3_BUCKET:
    urlpatterns.append(re_path(r"^media/(?P<path>.+)$", media, name="media"))
