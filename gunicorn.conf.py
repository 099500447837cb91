"""gunicorn's own settings, read from the working directory (the Procfile's web process runs
there): the master's log lines ("Starting gunicorn", "Booting worker", a worker's timeout or
crash) in the application's format, so a log pipeline reads every line of the web process. The
format follows nerstudio/settings' NERSTUDIO_LOG_FORMAT (JSON unless DEBUG is on); the master
does not load Django, so the choice is read from the environment here with the same reader
(django-environ)."""

import environ

_env = environ.Env()
_default_format = "text" if _env.bool("DEBUG", default=False) else "json"

if _env.str("NERSTUDIO_LOG_FORMAT", _default_format) == "json":
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
