from django.urls import path

from providers import views

app_name = "providers"

urlpatterns = [
    path("providers/", views.index, name="index"),
    path("providers/<uuid:public_id>/test/", views.test_connection, name="test-connection"),
]
