"""The websocket behind a generation's page: joins the generation's group and forwards its
cards and status as HTML fragments for the htmx `ws` extension to swap in out-of-band.

Connect cost: the database work (the session's user, the access check, the current state) runs
on the consumers' own threads, not the process's single sync thread (lib/consumer_threads.py); the
access check is one query and the current state one more; the socket is accepted as soon as the
access check has passed, and joining the group and rendering the state follow.

Keeping idle sockets up is the server's and the channel layer's job, not this consumer's: the web
server pings every socket (uvicorn's ws_ping_interval, 20 s by default), which keeps proxies from
timing an idle socket out, and channels-redis reads with a socket timeout above its blocking pop
(settings: CHANNEL_LAYERS). A socket that drops anyway is reopened by the htmx `ws` extension
with a jittered backoff, and every (re)connect starts with the whole current state.
"""

import uuid

from channels.generic.websocket import AsyncWebsocketConsumer
from django.db.models import Q

from generation import live
from generation.models import Generation
from lib.consumer_threads import off_the_sync_thread
from orgs.models import Membership


def visible_generation_id(user, public_id: uuid.UUID) -> int | None:
    """The same rule as the page (`Generation.objects.visible_to(membership)`), in one query:
    admins see their organization's generations, members their own; anything else, and anyone
    without an organization, is as if it did not exist."""
    membership = Membership.objects.filter(user_id=user.pk)
    admin_of = membership.filter(role=Membership.Role.ADMIN).values("org_id")
    return (
        Generation.objects.filter(public_id=public_id, org_id__in=membership.values("org_id"))
        .filter(Q(user_id=user.pk) | Q(org_id__in=admin_of))
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
        self.generation_id = await off_the_sync_thread(visible_generation_id)(user, public_id)
        if self.generation_id is None:
            await self.close()
            return
        await self.accept()
        # Join before reading the state, so a change made meanwhile still arrives afterwards.
        self.group = live.group_name(public_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
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
        html = await off_the_sync_thread(render)(*args)
        if html:
            await self.send(text_data=html)
