import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")

application = get_wsgi_application()

# Import every view now, and the statistics libraries the agreement and results pages use (loaded on first use
# elsewhere, so that workers and manage.py start without them), not on a web worker's first request, which
# would otherwise wait for them (docs/PERFORMANCE.md, web processes).
from django.urls import get_resolver  # noqa: E402 - after the app registry is ready

get_resolver().url_patterns  # noqa: B018 - evaluated for its imports
import choix  # noqa: E402, F401
import scipy.stats  # noqa: E402, F401
import statsmodels.stats.inter_rater  # noqa: E402
import statsmodels.stats.proportion  # noqa: E402, F401

# What loading Django and the apps made lives as long as the process: take it out of the cyclic collector's
# view, so the occasional full collection walks only what requests made (docs/PERFORMANCE.md, web processes).
gc.freeze()
