"""The Celery application. Queues and routes are declared in settings (``CELERY_*``).

Workers: ``celery -A enclave worker -Q default`` for imports and builds, ``-Q gpu`` for training.
Tasks never run eagerly outside tests; if the broker is down, publishing raises. The default workers also run
the periodic work of ``enclave.periodic``.
"""

import os

from celery import Celery

from enclave import periodic

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")

app = Celery("enclave")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
periodic.connect()
