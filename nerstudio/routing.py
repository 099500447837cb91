"""Websocket routes; each app that pushes live updates adds its consumer here."""

from django.urls import path

from generation.consumers import GenerationConsumer

websocket_urlpatterns: list = [
    path("ws/generations/<uuid:public_id>/", GenerationConsumer.as_asgi()),
]
