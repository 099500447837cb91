"""The websocket behind a generation's page: joins the generation's group and forwards its
cards and status as HTML fragments for the htmx `ws` extension to swap in out-of-band."""

import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from generation import live
from generation.models import Generation
from orgs.models import Membership


def visible_generation_id(user, public_id: uuid.UUID) -> int | None:
    """The same rule as the page: admins see their organization's generations, members their
    own; anything else is as if it did not exist."""
    membership = Membership.objects.filter(user=user).first()
    if membership is None:
        return None
    return (
        Generation.objects.visible_to(membership)
        .filter(public_id=public_id)
        .values_list("pk", flat=True)
        .first()
    )


class GenerationConsumer(AsyncWebsocketConsumer):
    group = None
    generation_id = None

    async def connect(self):
        live.remember_server_loop()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        public_id = self.scope["url_route"]["kwargs"]["public_id"]
        self.generation_id = await database_sync_to_async(visible_generation_id)(user, public_id)
        if self.generation_id is None:
            await self.close()
            return
        # Join before reading the state, so a change made meanwhile still arrives afterwards.
        self.group = live.group_name(public_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send_html(live.render_generation, self.generation_id)

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """The page sends nothing; ignore anything that arrives."""

    async def generation_changed(self, event):
        await self._send_html(live.render_generation, self.generation_id)

    async def image_changed(self, event):
        await self._send_html(live.render_image, self.generation_id, event["image_id"])

    async def _send_html(self, render, *args):
        html = await database_sync_to_async(render)(*args)
        if html:
            await self.send(text_data=html)
