"""Secrets that travel in URLs never reach the logs.

A provider calls back on a URL that carries the image's secret token
(/callbacks/images/<image uuid>/<token>/). Django logs the path of every 4xx and 5xx answer,
access logs print every path, and an exception may quote the URL; this filter, installed on the
log handlers (nerstudio/settings: LOGGING), rewrites the token to [redacted] in the message, its
arguments and any traceback before anything is written.
"""

import logging
import re

CALLBACK_TOKEN = re.compile(r"(/callbacks/images/[^/\s]+/)([^/\s?#\"'<>]+)")


def redact(text: str) -> str:
    return CALLBACK_TOKEN.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
