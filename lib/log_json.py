"""One JSON object per log line in production (nerstudio/settings: LOGGING), for a log pipeline to
index: time, level, logger, message, the ids lib.request_id binds, any `extra=` fields, and the
traceback.

Built on python-json-logger. Secrets in URLs are redacted from the finished line
(lib.log_redaction), so a token hidden in an extra field or in Django's `request` is covered as
well as the message the handler's filter already rewrote.
"""

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from lib.log_redaction import redact

# Objects some loggers attach (Django's request, a socket); the ids already say which request.
_DROPPED = ("request", "scope", "server_time")


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in _DROPPED:
            log_data.pop(key, None)
        return {key: value for key, value in log_data.items() if value is not None}

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
