"""Settings are read from the environment and fail with a clear message on bad values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Variables of the surrounding run that would change what the subprocess sees.
_CLEARED = {
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "ARTIFACT_S3_BUCKET",
    "GPU_NODE_APART",
    "TRAINING_WORK_DIR",
    "TRAINING_PROCESSES",
}


def _python(
    module: str, env: dict[str, str], *args: str, tmp_path: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    clean.update({"DJANGO_SETTINGS_MODULE": module, "ENCLAVE_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=timeout, check=False
    )


def _django(module: str, env: dict[str, str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _python(module, env, "manage.py", *args, tmp_path=tmp_path, timeout=120)


def _settings(env: dict[str, str], *expressions: str, tmp_path: Path) -> list[str]:
    """What ``expressions`` (of the settings, ``s``) print in a process of their own started with ``env`` on
    the local settings."""
    script = f"import django;django.setup();from django.conf import settings as s;print({', '.join(expressions)})"
    result = _python("enclave.settings.local", env, "-c", script, tmp_path=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "banana"}, "DEBUG='banana' is invalid: expected one of"),
        ({"SESSION_IDLE_MINUTES": "soon"}, "SESSION_IDLE_MINUTES='soon' is invalid: expected a whole number"),
        ({"SESSION_IDLE_MINUTES": "1"}, "expected a whole number >= 5"),
        (
            {"DATABASE_URL": "mysql://root@localhost/enclave"},
            "DATABASE_URL='mysql://root@localhost/enclave' is invalid",
        ),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432"}, "a URL that names the database"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL='http://127.0.0.1:6379' is invalid"),
    ],
)
def test_it_refuses_bad_environment_values(env: dict[str, str], message: str, tmp_path: Path) -> None:
    result = _django("enclave.settings.local", env, "check", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_needs_a_secret_key_in_production(tmp_path: Path) -> None:
    result = _django(
        "enclave.settings.production", {"ALLOWED_HOSTS": "enclave.bank.internal"}, "check", tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required and not set" in result.stderr


def test_it_passes_the_deploy_check_with_production_settings(tmp_path: Path) -> None:
    env = {
        "SECRET_KEY": "x7#kq-2v!m9@pl4r$ztw8&yh3^nb6*cj1(sd5)fg0+ue_ia=o%" * 2,
        "ALLOWED_HOSTS": "enclave.bank.internal",
    }
    result = _django(
        "enclave.settings.production", env, "check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_needs_nothing_set_for_the_embedded_default(tmp_path: Path) -> None:
    seen = _settings({}, "s.DATABASES['default']['ENGINE']", "s.CELERY_BROKER_URL", "s.DEBUG", tmp_path=tmp_path)
    assert seen == ["django.db.backends.sqlite3", "filesystem://", "False"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_it_switches_the_stack_with_database_and_redis_urls(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgres://enclave:pw@db.internal:5432/enclave",
        "REDIS_URL": "redis://cache.internal:6379/2",
    }
    seen = _settings(
        env, "s.DATABASES['default']['ENGINE']", "s.DATABASES['default']['NAME']", "s.CELERY_BROKER_URL",
        "s.CACHES['default']['BACKEND']", tmp_path=tmp_path,
    )  # fmt: skip
    assert seen == [
        "django.db.backends.postgresql",
        "enclave",
        "redis://cache.internal:6379/2",
        "django.core.cache.backends.redis.RedisCache",
    ]


def test_it_refuses_a_gpu_node_apart_without_postgres_redis_and_an_object_store(tmp_path: Path) -> None:
    embedded = _django("enclave.settings.local", {"GPU_NODE_APART": "true"}, "check", tmp_path=tmp_path)
    assert embedded.returncode != 0
    assert "ImproperlyConfigured" in embedded.stderr
    assert (
        "GPU_NODE_APART=true: a gpu node that shares no disk with the web needs PostgreSQL, Redis and an "
        "S3-compatible artifact store; set DATABASE_URL=postgres://..., REDIS_URL=redis://..., ARTIFACT_S3_BUCKET."
    ) in embedded.stderr
    without_store = {
        "GPU_NODE_APART": "true",
        "DATABASE_URL": "postgres://enclave:pw@db.internal:5432/enclave",
        "REDIS_URL": "redis://cache.internal:6379/2",
    }
    result = _django("enclave.settings.local", without_store, "check", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "; set ARTIFACT_S3_BUCKET." in result.stderr

    with_store = {**without_store, "ARTIFACT_S3_BUCKET": "enclave-artifacts", "TRAINING_PROCESSES": "2"}
    seen = _settings(
        with_store, "s.STORAGES['artifacts']['BACKEND']", "s.TRAINING_WORK_DIR", "s.TRAINING_PROCESSES",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert seen == ["storages.backends.s3.S3Storage", str(tmp_path.resolve() / "training"), "2"]
