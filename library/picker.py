"""Generate's library picker: which library images it shows for a role (product photos or
reference images)."""

import uuid

from library.models import SourceImage

PICKER_SIZE = 24


def picker_context(org, role: str, *, selected=(), text: str = "") -> dict:
    """What Generate's library picker shows for `role`: the chosen images first (archived ones
    too: a reused generation may have used one), then recent ones matching `text`."""
    ids = [value for value in selected if _is_uuid(value)]  # hand-made links may carry anything
    chosen = list(SourceImage.objects.for_org(org).in_library().filter(public_id__in=ids))
    choices = (
        SourceImage.objects.for_org(org)
        .pickable()
        .matching(text)
        .exclude(pk__in=[s.pk for s in chosen])
        .recent_first()[: max(0, PICKER_SIZE - len(chosen))]
    )
    return {"role": role, "chosen": chosen, "choices": list(choices), "text": text}


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
