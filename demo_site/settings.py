"""Demo site settings: every knob comes from an environment variable (SPEC §5)."""

import os
import secrets
from pathlib import Path

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("SMI_DEMO_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def local_secret_key(path: Path) -> str:
    """A random key made on the first DEBUG start and reused after, so sessions and order
    links survive restarts. Written to a private temporary file and hard-linked into place,
    so a web server and a worker starting together end up with the same key."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process got there first: use its key
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to make a new demo secret key.")
    return key


DEBUG = env_flag("DJANGO_DEBUG")
# Order keys and callback secrets are HMACs under SECRET_KEY: a known key would give away
# every order. No default, then: set it, or let DEBUG make a private one for this machine.
if os.environ.get("DJANGO_SECRET_KEY", "").strip():
    SECRET_KEY = os.environ["DJANGO_SECRET_KEY"].strip()
elif DEBUG:
    SECRET_KEY = local_secret_key(VAR_DIR / "secret_key")
else:
    raise ImproperlyConfigured(
        "Set the DJANGO_SECRET_KEY environment variable: with DEBUG off the demo has no "
        "default secret key (or set DJANGO_DEBUG=1 for a local key kept in the var folder)."
    )
# Old keys still accepted for signatures, order keys and callback URLs while links made
# under them are live (comma-separated).
SECRET_KEY_FALLBACKS = [
    k.strip() for k in os.environ.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if k.strip()
]
ALLOWED_HOSTS = [
    h
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h
]
# Behind a proxy that ends TLS (deploy/nginx/wagtail-smi.conf sets X-Forwarded-Proto), so
# that Django knows a request was HTTPS (secure cookies, the CSRF origin check). Only when
# the site is reachable through that proxy alone.
if env_flag("DJANGO_BEHIND_HTTPS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "demo_site.home.apps.HomeConfig",
    "wagtail_smi",
    "wagtail.contrib.settings",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_q",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
                "demo_site.context.demo",
            ]
        },
    }
]

# Persistent connections (seconds; 0 opens one per request and per task, ~9 ms each on
# PostgreSQL), checked before reuse so a restarted database costs no failed request
# (docs/performance.md).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL, a busy timeout and IMMEDIATE transactions keep the web process and the worker
    # from tripping over "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("SMI_MEDIA_ROOT", VAR_DIR / "media"))
SMI_PRIVATE_ROOT = Path(os.environ.get("SMI_PRIVATE_ROOT", VAR_DIR / "private"))

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Delivered files: outside the media root, never served by URL.
    "smi_private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(SMI_PRIVATE_ROOT), "base_url": None},
    },
}


def s3_storage(bucket: str, **options) -> dict:
    """A django-storages S3 entry for STORAGES (AWS S3, or an S3-compatible service at
    SMI_S3_ENDPOINT_URL). Credentials come from the environment as boto3 reads them
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or the machine's role), never from here."""
    endpoint = os.environ.get("SMI_S3_ENDPOINT_URL", "").strip() or None
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "region_name": os.environ.get("SMI_S3_REGION", "").strip() or None,
            # A local S3-compatible server has no bucket host names.
            "addressing_style": "path" if endpoint else None,
            "signature_version": "s3v4",
            # Two uploads of the same name must not replace each other.
            "file_overwrite": False,
            **options,
        },
    }


# Object storage (django-storages, the s3 extra): SMI_S3_BUCKET keeps delivered files in a
# private bucket (signed URLs only); SMI_S3_MEDIA_BUCKET keeps Wagtail's images, originals
# and renditions (SMI_S3_MEDIA_PUBLIC=1 for a public-read bucket with plain URLs).
if os.environ.get("SMI_S3_BUCKET", "").strip():
    STORAGES["smi_private"] = s3_storage(
        os.environ["SMI_S3_BUCKET"].strip(), default_acl="private", querystring_auth=True
    )
if os.environ.get("SMI_S3_MEDIA_BUCKET", "").strip():
    STORAGES["default"] = s3_storage(
        os.environ["SMI_S3_MEDIA_BUCKET"].strip(),
        querystring_auth=not env_flag("SMI_S3_MEDIA_PUBLIC"),
    )

# One cache for every process (SMI_CACHE_URL, e.g. redis://127.0.0.1:6379/1): the rate
# limits and the cached site settings are then shared by all web processes; the default
# cache lives in each process's own memory.
if os.environ.get("SMI_CACHE_URL", "").strip():
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["SMI_CACHE_URL"].strip(),
            "KEY_PREFIX": "wagtail_smi",
        }
    }
else:
    # One process's own memory: enough entries to hold the demo's pages (cached prices and
    # offers for every image, renditions, rate-limit counters), which Django's default of 300
    # does not. Several web processes and workers share nothing this way: set SMI_CACHE_URL.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 5000},
        }
    }

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("SMI_EMAIL_DIR", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "shop@example.com")
_ADMIN_EMAIL = os.environ.get("SMI_ADMIN_EMAIL", "admin@example.com")
# Django 6 takes plain addresses; 5.2 wants (name, address) pairs.
ADMINS = [_ADMIN_EMAIL] if django.VERSION >= (6, 0) else [("Demo admin", _ADMIN_EMAIL)]

WAGTAIL_SITE_NAME = "wagtail-smi demo"
WAGTAILADMIN_BASE_URL = os.environ.get("SMI_PUBLIC_BASE_URL", "http://127.0.0.1:8000")
# Nothing leaves the machine: no update check from the admin's dashboard, no avatars
# fetched from Gravatar.
WAGTAIL_ENABLE_UPDATE_CHECK = False
WAGTAIL_GRAVATAR_PROVIDER_URL = None

# django-q2: business retries live in the job; the broker only gets a few attempts, with a
# task timeout well below the retry interval so a slow task is never handed out twice.
QUEUE_BROKER = os.environ.get("SMI_QUEUE_BROKER", "orm")
Q_CLUSTER = {
    # Every worker of one shop shares the name (it names the queue); two shops on one
    # Redis need two names.
    "name": os.environ.get("SMI_QUEUE_NAME", "").strip() or "wagtail_smi",
    "workers": 1 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 2,
    "timeout": 300,
    "retry": 600,
    "max_attempts": 3,
    "catch_up": False,
    "ack_failures": True,
    "label": "Task queue",
}
if QUEUE_BROKER == "redis":
    Q_CLUSTER["redis"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
elif QUEUE_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
    # The ORM broker has no way to wake a worker: when a read finds the queue empty, the
    # cluster sleeps ``poll`` seconds before the next one (django-q2's default: 0.2). A
    # paid order therefore waits poll / 2 on average, up to ``poll``, before its upscaler
    # submission starts. 0.1 s keeps that wait well under the time a submission takes, for
    # ten indexed reads a second per cluster while idle (nothing for PostgreSQL; on SQLite,
    # in WAL mode, reads do not block the writers). The Redis broker blocks on the list
    # instead, and wakes at once.
    Q_CLUSTER["poll"] = 0.1
else:
    raise ValueError(f"SMI_QUEUE_BROKER must be 'orm' or 'redis', not {QUEUE_BROKER!r}")

_upscaler = os.environ.get("SMI_UPSCALER", "local")
if _upscaler == "upsampler":
    UPSCALER = {
        "CLASS": "wagtail_smi.upscalers.upsampler.UpsamplerUpscaler",
        "OPTIONS": {
            "API_KEY": os.environ.get("SMI_UPSAMPLER_API_KEY", ""),
            "API_BASE": os.environ.get("SMI_UPSAMPLER_API_BASE", "https://upsampler.com/api/v1"),
        },
    }
elif _upscaler == "local":
    UPSCALER = {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}}
elif _upscaler == "realesrgan":
    # Real-ESRGAN in the worker (the ai extra): the compact model on the CPU by default;
    # SMI_REALESRGAN_GPU_ID=0 picks the first Vulkan GPU (and the x4plus model).
    UPSCALER = {
        "CLASS": "wagtail_smi.upscalers.realesrgan.RealEsrganUpscaler",
        "OPTIONS": {
            "GPU_ID": env_int("SMI_REALESRGAN_GPU_ID", -1),
            "MODEL": os.environ.get("SMI_REALESRGAN_MODEL", "").strip() or None,
        },
    }
else:
    raise ValueError(
        f"SMI_UPSCALER must be 'local', 'realesrgan' or 'upsampler', not {_upscaler!r}"
    )

WAGTAIL_SMI = {
    "PAYMENT_BACKEND": os.environ.get("SMI_PAYMENT_BACKEND", "dummy"),
    "STRIPE": {
        "SECRET_KEY": os.environ.get("SMI_STRIPE_SECRET_KEY", ""),
        "WEBHOOK_SECRET": os.environ.get("SMI_STRIPE_WEBHOOK_SECRET", ""),
        "API_BASE": os.environ.get("SMI_STRIPE_API_BASE") or None,
    },
    "UPSCALER": UPSCALER,
    # The shop's pages (purchase, order, downloads) in the demo's own layout.
    "BASE_TEMPLATE": "base.html",
    "PUBLIC_BASE_URL": os.environ.get("SMI_PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
    "ALLOW_PRIVATE_URLS": env_flag("SMI_ALLOW_PRIVATE_URLS"),
    "RATE_LIMITS_ENABLED": env_flag("SMI_RATE_LIMITS", "1"),
    # Behind a reverse proxy: how many proxies append to X-Forwarded-For, or the header
    # one trusted proxy sets to the client's address (README, "Behind a reverse proxy").
    "TRUSTED_PROXIES": env_int("SMI_TRUSTED_PROXIES", 0),
    "CLIENT_IP_HEADER": os.environ.get("SMI_CLIENT_IP_HEADER", "").strip() or None,
    # django, redirect (presigned URLs of object storage), x-accel-redirect (nginx) or
    # x-sendfile: docs/deployment.md.
    "DOWNLOAD_SERVE": os.environ.get("SMI_DOWNLOAD_SERVE", "").strip() or "django",
    "X_ACCEL_REDIRECT_PREFIX": os.environ.get("SMI_X_ACCEL_REDIRECT_PREFIX", "").strip()
    or "/smi-private/",
}
# The demo mailbox (demo_site.mailbox) shows what the file backend wrote, in DEBUG only.
SMI_DEMO_MAILBOX_DIR = EMAIL_FILE_PATH if DEBUG else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "wagtail_smi": {"handlers": ["console"], "level": os.environ.get("SMI_LOG_LEVEL", "INFO")},
    },
}
