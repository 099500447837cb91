"""The local prompt writer: the brief crossed with shots, settings and lights, deterministic.
Framework-free."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from providers.adapters.answers import LIGHTS, SETTINGS, SHOTS, check_variants
from providers.adapters.base import LLMAdapter
from providers.adapters.errors import PermanentError
from providers.adapters.types import ChatResult, VariantsRequest

# SHOTS, SETTINGS and LIGHTS live in answers.py: remote prompt writers that answer short are
# topped up with variations built from the same material.


def _reference_clause(references: Sequence[str]) -> str:
    colours = list(dict.fromkeys(re.findall(r"#[0-9a-fA-F]{6}", " ".join(references))))[:4]
    first = next((r.strip() for r in references if r.strip()), "")
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0].rstrip(".!? ")
    clause = f" Echo the references: {sentence[0].lower()}{sentence[1:]}." if sentence else ""
    if colours:
        clause += f" Palette: {', '.join(colours)}."
    return clause


def local_variants(request: VariantsRequest) -> tuple[str, ...]:
    """`n` distinct prompts: the brief crossed with shot, setting and light, in a prompt-seeded
    order so different briefs do not all start with the same shot."""
    brief = " ".join(request.prompt.split()).rstrip(".")
    if not brief:
        raise PermanentError("The prompt is empty.", code="invalid_request")
    rng = random.Random(brief)
    shots, settings, lights = (rng.sample(axis, len(axis)) for axis in (SHOTS, SETTINGS, LIGHTS))
    tail = _reference_clause(request.references)
    variants = []
    for i in range(request.n):
        q, r = divmod(i, len(shots))
        text = (
            f"{brief}. {shots[r]} {settings[(r + q) % len(settings)]}, "
            f"{lights[(r + 2 * q) % len(lights)]}.{tail} Professional product photography, "
            f"sharp focus, on-brand."
        )
        if q >= len(settings):  # beyond 36 combinations the wording would repeat
            text += f" Variation {i + 1}."
        variants.append(text)
    return tuple(variants)


class LocalLLMAdapter(LLMAdapter):
    slug = "local-llm"
    label = "Local prompt writer (offline)"
    default_model = "local-variants"

    def generate_variants(
        self, request: VariantsRequest, *, timeout: float | None = None
    ) -> ChatResult:
        return ChatResult(check_variants(local_variants(request), request.n), model=self.model)

    def _probe(self) -> str:
        return "The local prompt writer is built in and ready."
