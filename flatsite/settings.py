"""Django settings for flatsite; every deployment-specific value comes from the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url

from flatsite.settings_errors import SettingError

BASE_DIR = Path(__file__).resolve().parent.parent


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """A boolean environment variable: 1/true/yes/on or 0/false/no/off; anything else stops start-up."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise SettingError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no or on/off)")
    return value in _TRUE


def env_int(name: str, default: int) -> int:
    """An integer environment variable; a value that is not a whole number stops start-up."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    """A number environment variable; a value that is not a number stops start-up."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None


def env_str(name: str, default: str) -> str:
    """A text environment variable (set but empty stays empty: "" turns some features off)."""
    return os.environ.get(name, default).strip()


def env_json(name: str) -> dict[str, Any]:
    """A JSON-object environment variable; malformed JSON stops start-up."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingError(f"{name} must be a JSON object")
    return value


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def secret_key(debug: bool, key_file: Path) -> str:
    """SECRET_KEY from the environment, else from the file bin/up writes once; refused when neither exists."""
    key = env_str("SECRET_KEY", "")
    if not key and key_file.is_file():
        key = key_file.read_text().strip()
    if key:
        return key
    if debug or env_bool("FLATSITE_ALLOW_DEV_KEY", False):
        # A development key is only acceptable while DEBUG is on (and in the test settings).
        return "flatsite-development-key-not-for-production-use-" + "x" * 16
    raise SettingError(
        f"SECRET_KEY must be set when DEBUG is off: set it in the environment or .env, "
        f"or run bin/up once, which writes a generated key to {key_file}"
    )


DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

DATA_DIR = Path(env_str("FLATSITE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
SECRET_KEY = secret_key(DEBUG, DATA_DIR / "secret_key")
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"
PRIVATE_ROOT = DATA_DIR / "private"  # originals with their metadata: never served
INDEX_ROOT = DATA_DIR / "index"
CHECKPOINT_ROOT = DATA_DIR / "checkpoints"
STAGING_ROOT = DATA_DIR / "staging"
# SQLite and every derived file live here; create it on first start.
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "search",
    "training",
]

MIDDLEWARE = [
    "flatsite.middleware.ServerTimingMiddleware",  # first, so its time covers every other middleware
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flatsite.urls"
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
                "flatsite.core.context_processors.role_flags",
            ],
        },
    }
]
WSGI_APPLICATION = "flatsite.wsgi.application"
ASGI_APPLICATION = "flatsite.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "") or f"sqlite:///{DATA_DIR / 'flatsite.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and tests share one file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-flatsite.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "listings:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered, never lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Redis redelivers an unacknowledged task after this many seconds; job leases make that harmless.
BROKER_VISIBILITY_TIMEOUT = env_int("FLATSITE_BROKER_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int] = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
if BROKER_VISIBILITY_TIMEOUT < 100:
    # kombu looks for expired messages only every 10 x 10 s by default; a short timeout needs more often.
    CELERY_BROKER_TRANSPORT_OPTIONS.update(unacked_restore_interval=1, unacked_restore_throttle=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# How often beat asks index_compact whether a live index is due (see "Compaction" below).
FLATSITE_INDEX_COMPACT_EVERY_S = env_float("FLATSITE_INDEX_COMPACT_EVERY_S", 60.0)
CELERY_BEAT_SCHEDULE = {
    "jobs-reconcile": {"task": "search.tasks.jobs_reconcile", "schedule": 30.0},
    "indexes-reconcile": {"task": "search.tasks.indexes_reconcile", "schedule": 600.0},
    "indexes-compact": {"task": "search.tasks.indexes_compact", "schedule": FLATSITE_INDEX_COMPACT_EVERY_S},
}

CHANNEL_BACKEND = env_str("CHANNEL_BACKEND", "redis")
CHANNEL_LAYERS: dict[str, dict[str, Any]]
if CHANNEL_BACKEND == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 gives up on a socket read after 5 s by default, exactly as long as
                # channels_redis blocks waiting for a message: every idle websocket would crash.
                "hosts": [{"address": env_str("CHANNEL_REDIS_URL", REDIS_URL), "socket_timeout": 30}],
                "capacity": 200,
            },
        }
    }

REST_FRAMEWORK = {
    # Token first: DRF takes the first class's WWW-Authenticate, so a missing or bad credential is a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "search.matching.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "flatsite API",
    "DESCRIPTION": "Listings, photo upload and similarity search.",
    "VERSION": "0.1.0",
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files: the docs page uses no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Upload limits (enforced by search.services before anything is stored).
FLATSITE_MAX_UPLOAD_BYTES = env_int("FLATSITE_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
FLATSITE_MAX_FILES_PER_UPLOAD = env_int("FLATSITE_MAX_FILES_PER_UPLOAD", 500)
FLATSITE_MAX_PIXELS = env_int("FLATSITE_MAX_PIXELS", 50_000_000)
FLATSITE_MAX_ZIP_BYTES = env_int("FLATSITE_MAX_ZIP_BYTES", 500 * 1024 * 1024)
# Uploaded images are decoded in a child process capped at this much memory (MB on top of the loaded
# libraries) and wall time, so a hostile file fails alone (search.ml.images.safe_decode).
FLATSITE_DECODE_IN_CHILD = env_bool("FLATSITE_DECODE_IN_CHILD", True)
FLATSITE_DECODE_MEMORY_MB = env_int("FLATSITE_DECODE_MEMORY_MB", 1024)
FLATSITE_DECODE_TIMEOUT_S = env_float("FLATSITE_DECODE_TIMEOUT_S", 20)
# Also search with the mirrored query's embedding. Off: the embedding is nearly mirror-invariant, so a
# mirrored copy's original reaches the verified shortlist anyway (bench/README.md, "Through the app").
FLATSITE_SEARCH_MIRROR_QUERY = env_bool("FLATSITE_SEARCH_MIRROR_QUERY", False)
# Longest side (px) of the frame an uploaded query's SIFT runs on; 0 = the stored photos' frame (640).
# SIFT is scale-invariant and its time grows with the pixels: 480 takes ~30 % less, and every edited copy
# is still found (bench/README.md, "Through the app").
FLATSITE_SEARCH_QUERY_SIFT_SIDE = env_int("FLATSITE_SEARCH_QUERY_SIFT_SIDE", 480)
# Search admission (search.matching.admission): searches running at once per web process (0: one
# per two usable cores, as one search runs its stages on two threads), how many more may wait, and for
# how long, before the answer is 503 "busy" with Retry-After.
FLATSITE_SEARCH_SLOTS = env_int("FLATSITE_SEARCH_SLOTS", 0)
FLATSITE_SEARCH_QUEUE = env_int("FLATSITE_SEARCH_QUEUE", 32)
FLATSITE_SEARCH_MAX_WAIT_S = env_float("FLATSITE_SEARCH_MAX_WAIT_S", 10)
# Which registered encoder drives search and which drives clustering (see bench/README.md for why). The search
# one is a default: an admin's choice on the Operations page (search.models.SearchEncoderChoice) overrides it.
FLATSITE_SEARCH_ENCODER = env_str("FLATSITE_SEARCH_ENCODER", "effnet-lite0")
FLATSITE_CLUSTER_ENCODER = env_str("FLATSITE_CLUSTER_ENCODER", "effnet-lite2")
# Index vectors are centred on the collection mean once a collection has this many photos (0: never); the
# mean is recomputed from the database whenever the collection has doubled since (search/matching/index.py).
FLATSITE_INDEX_CENTRE_MIN = env_int("FLATSITE_INDEX_CENTRE_MIN", 50)
# Compaction (search.matching.index.index_compact, every FLATSITE_INDEX_COMPACT_EVERY_S by beat): folds the
# delta segments into the base once they, or the tombstones, exceed max(MIN_ROWS, FRACTION x base rows), or
# once there are more than MAX_SEGMENTS segments (bench/README.md, "App at scale").
FLATSITE_INDEX_COMPACT_MIN_ROWS = env_int("FLATSITE_INDEX_COMPACT_MIN_ROWS", 20_000)
FLATSITE_INDEX_COMPACT_FRACTION = env_float("FLATSITE_INDEX_COMPACT_FRACTION", 0.05)
FLATSITE_INDEX_MAX_SEGMENTS = env_int("FLATSITE_INDEX_MAX_SEGMENTS", 48)
# Encoder whose centred cosine is blended into the similar-look re-ranking (search.ml.match.rerank); "" turns
# the re-ranking off. It must be an active encoder (the clustering one by default), so it has an index.
FLATSITE_RERANK_ENCODER = env_str("FLATSITE_RERANK_ENCODER", "effnet-lite2")
# Match-level thresholds: empty means the calibrated defaults of search.ml.match.levels.LevelThresholds
# (see bench/README.md); a JSON object here overrides single values.
FLATSITE_MATCH_THRESHOLDS = env_json("FLATSITE_MATCH_THRESHOLDS")
# True when GPU workers listen on the "gpu" queue; extraction and training are then routed there.
FLATSITE_GPU_QUEUE = env_bool("FLATSITE_GPU_QUEUE", False)
# PyTorch intra-op threads of a training worker; unset: 1 for CPU runs (worker processes already share the
# cores, and oversubscribed OpenMP threads stall each other), PyTorch's default for GPU runs.
FLATSITE_TORCH_THREADS = env_int("FLATSITE_TORCH_THREADS", 0) or None
# Threads of FAISS (OpenMP) and of the BLAS behind numpy in web and worker processes (search/apps.py): one
# each, as web and worker processes already share the cores.
# Compile the clustering kernels in the background when a worker starts, so the first placement is fast.
FLATSITE_CLUSTER_WARMUP = env_bool("FLATSITE_CLUSTER_WARMUP", False)
FLATSITE_FAISS_THREADS = env_int("FLATSITE_FAISS_THREADS", 1)
FLATSITE_BLAS_THREADS = env_int("FLATSITE_BLAS_THREADS", 1)
# The first admin created by `manage.py bootstrap` (a password is generated and printed when empty).
FLATSITE_ADMIN_USER = env_str("FLATSITE_ADMIN_USER", "admin") or "admin"
FLATSITE_ADMIN_PASSWORD = env_str("FLATSITE_ADMIN_PASSWORD", "")
# Niceness added to Celery worker processes (0: none): on a machine shared with web, searches get the
# cores first and ingestion runs in the gaps (flatsite/celery.py).
FLATSITE_WORKER_NICE = env_int("FLATSITE_WORKER_NICE", 10)
# Photos sampled (with a fixed seed) by the encoder evaluation on the operations page.
FLATSITE_EVAL_SAMPLE = env_int("FLATSITE_EVAL_SAMPLE", 200)
FLATSITE_JOB_HEARTBEAT_TIMEOUT = env_int("FLATSITE_JOB_HEARTBEAT_TIMEOUT", 120)
FLATSITE_JOB_MAX_ATTEMPTS = env_int("FLATSITE_JOB_MAX_ATTEMPTS", 3)
# Fault injection for the fault-tolerance tests only (see flatsite/core/faults.py); unset in production.
FLATSITE_TEST_FAULTS = env_str("FLATSITE_TEST_FAULTS", "")
DATA_UPLOAD_MAX_NUMBER_FILES = FLATSITE_MAX_FILES_PER_UPLOAD
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # faiss's loader logs at INFO each optional module it fails to import before the one it uses: six lines
    # of "Could not load library with AVX512 support" at every start, for a build that runs fine.
    "loggers": {"faiss.loader": {"level": "WARNING"}},
}
