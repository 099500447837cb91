"""What the benches' fake providers answer: the real OpenAI chat completion shape (PROVIDERS.md)."""

import json


def completion(content: dict) -> bytes:
    """A chat.completion whose message is `content` as JSON."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(content)},
                }
            ],
        }
    ).encode()
