"""Django settings of every benchmarked process: the test settings (DEBUG off, real servers, fast
broker timeouts, in-memory email), with production's connection reuse and the bench's URLconf.

The test settings force CONN_MAX_AGE = 0 (a new PostgreSQL connection per request and per Celery
task) so tests never leak connections; production keeps connections for 60 s (settings.base), so
the bench does too — otherwise every request would pay a connection set-up production never pays.
"""

from orderflow.settings.test import *  # noqa: F403
from orderflow.settings.test import env

for _db in DATABASES.values():  # noqa: F405
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)

# orderflow.urls plus the HTTP benchmark's baseline endpoint.
ROOT_URLCONF = "bench.baseline_urls"
