from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

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

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
