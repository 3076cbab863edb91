"""Test settings: the demo's, with synchronous tasks and throwaway storage."""

import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="smi-tests-"))
os.environ.setdefault("SMI_DEMO_VAR_DIR", str(_TMP))
os.environ.setdefault("SMI_RATE_LIMITS", "0")
# The demo has no default secret key with DEBUG off; a fixed one for the tests only.
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-never-used-outside-the-test-suite"
)

from demo_site.settings import *  # noqa: E402,F403
from demo_site.settings import DATABASES, Q_CLUSTER, STORAGES, WAGTAIL_SMI  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# django-q2 reads its configuration once, at import: sync must be set here.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
STORAGES["smi_private"]["OPTIONS"]["location"] = str(_TMP / "private")
# SMI_TEST_S3=1: delivered files in a bucket of a local S3 server (moto, started for the
# session by tests/moto_support.py on this port), as on a shop with object storage.
SMI_TEST_S3_ENDPOINT = None
if os.environ.get("SMI_TEST_S3", "").strip().lower() in {"1", "true", "yes", "on"}:
    from tests.moto_support import free_port, s3_storage

    SMI_TEST_S3_ENDPOINT = f"http://127.0.0.1:{free_port()}"
    STORAGES["smi_private"] = s3_storage(
        SMI_TEST_S3_ENDPOINT, "smi-private-tests", default_acl="private", querystring_auth=True
    )
STORAGES["default"]["OPTIONS"]["location"] = str(_TMP / "media")
MEDIA_ROOT = _TMP / "media"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Clicks are written at once here, so tests can read the table right after a click;
# tests/test_perf_hot_paths.py covers the buffer.
WAGTAIL_SMI = {**WAGTAIL_SMI, "ALLOW_DUMMY_PAYMENTS": True, "BUFFER_CLICKS": False}
SMI_DEMO_MAILBOX_DIR = None
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"].pop("init_command", None)
LOGGING = {"version": 1, "disable_existing_loggers": False}
