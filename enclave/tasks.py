import socket

from celery import shared_task
from django.db import connection
from django.utils import timezone


@shared_task(name="enclave.health_check")
def health_check_task() -> dict[str, str]:
    """Proves a worker is consuming, can reach the database and which host it runs on."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {
        "status": "ok",
        "hostname": socket.gethostname(),
        "database": connection.vendor,
        "time": timezone.now().isoformat(),
    }
