"""Live updates of generations to the browser over the channel layer.

(Interface used by the pipeline; the websocket side is being built.)
"""


def push_generation(generation_id: int) -> None:
    """Send the generation's current status (header + every image card) to its viewers."""


def push_image(image_id: int) -> None:
    """Send one image card's current state to the generation's viewers."""
