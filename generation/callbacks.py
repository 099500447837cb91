"""Where image providers call back. The URL carries a per-image token; the body is never trusted
on its own: the result is confirmed with the provider's status endpoint (collect_result)."""

import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generation import tasks
from generation.pipeline.reconcile import adopt_task, callback_received
from generation.pipeline.results import find_image_for_callback
from lib.tasks import enqueue
from providers.adapters.errors import ProviderError

logger = logging.getLogger(__name__)


@csrf_exempt  # called by providers; authenticated by the token in the URL (and a signature)
@require_POST
def image_callback(request, public_id, token):
    image = find_image_for_callback(public_id, token)
    if image is None:
        return JsonResponse({"error": "Unknown callback."}, status=404)
    provider = image.generation.provider
    if provider is None:
        return HttpResponse(status=204)
    adapter = provider.build()
    # Signed by the account the provider runs on: the platform's for a catalogue model, the
    # organization's for an own-key provider (the previous key too, while it is rotated out).
    secrets = provider.webhook_secrets()
    verify = getattr(adapter, "verify_webhook", None)
    if secrets and verify and not any(verify(request.headers, request.body, s) for s in secrets):
        logger.warning("Rejected a callback with a bad signature for image %s", image.pk)
        return JsonResponse({"error": "Bad or stale signature."}, status=401)
    try:
        reported = adapter.parse_callback(request.body)
    except (ProviderError, ValueError):
        return JsonResponse({"error": "Unreadable callback body."}, status=400)
    if image.provider_task_id and reported.task_id and reported.task_id != image.provider_task_id:
        return JsonResponse({"error": "Task does not match."}, status=400)
    if image.status == image.Status.SUBMITTING and adopt_task(image.pk, reported.task_id):
        # The callback came before the submission recorded its task (the createTask reply is
        # still on its way, or the worker sending it died): the task is this image's.
        enqueue(tasks.collect_result, image_id=image.pk)
    elif image.status == image.Status.GENERATING:
        callback_received(image.pk)  # no poll while its collection is queued
        enqueue(tasks.collect_result, image_id=image.pk)
    return HttpResponse(status=204)  # duplicates and late callbacks change nothing
