"""gunicorn's own settings, read from the working directory (the Procfile's web process runs
there): the master's log lines ("Starting gunicorn", "Booting worker", a worker's timeout or
crash) in the application's format, so a log pipeline reads every line of the web process. The
format follows nerstudio/settings' NERSTUDIO_LOG_FORMAT (JSON unless DEBUG is on); the master
does not load Django, so the choice is read from the environment here in the same way."""

import os

_debug = os.environ.get("DEBUG", "").strip().lower() in ("true", "on", "ok", "y", "yes", "1")

if os.environ.get("NERSTUDIO_LOG_FORMAT", "text" if _debug else "json") == "json":
    # gunicorn replaces its defaults' top-level keys with these (gunicorn.glogging).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "lib.log_json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
