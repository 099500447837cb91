"""The offline providers: the embedded default, so the product works without any API key.

They do real work with Pillow (render, analyse) and deterministic text (prompt variants), so demos,
tests and air-gapped installs exercise the same flow as the remote providers. The image provider
(image.py) runs like a remote one, with storage and a background task; the others, and the
renderer, are framework-free like providers/adapters/.
"""
