"""Production: every secret from the environment, HTTPS only, passes ``manage.py check --deploy``."""

from enclave.settings.base import *  # noqa: F403
from enclave.settings.base import DATA_DIR, STORAGES
from enclave.settings.env import env_bool, env_int, env_str

SECRET_KEY = env_str("SECRET_KEY", required=True)
DEBUG = False

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
# Set when a reverse proxy terminates TLS and sends X-Forwarded-Proto.
if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Readable by the page's own script (Django's default): htmx sends the cookie's current token, so a page
# opened before the user logged in again in another tab (login rotates the token) can still save its work.
# HttpOnly would protect nothing here: the same token is in every form of the page.
CSRF_COOKIE_HTTPONLY = False

STATIC_ROOT = env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = False
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
