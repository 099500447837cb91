from django.urls import path

from generation import callbacks, views

app_name = "generation"

urlpatterns = [
    path("generate/", views.generate, name="generate"),
    path("generate/estimate/", views.estimate, name="estimate"),
    path("history/", views.history, name="history"),
    path("generations/<uuid:public_id>/", views.detail, name="detail"),
    path("generations/<uuid:public_id>/again/", views.again, name="again"),
    path(
        "callbacks/images/<uuid:public_id>/<str:token>/", callbacks.image_callback, name="callback"
    ),
]
