"""Settings of bench/generation_latency.py's production stack. The development settings'
allowances are decided as the settings load (DEBUG=true in the environment): outbound calls may
reach the fake providers on 127.0.0.1 over http. Then DEBUG is off for the run, as in
production: Django records no SQL per query (~10 % of a query's cost here) and renders templates
without debug information."""

from nerstudio.settings.base import *  # noqa: F403

DEBUG = False
