"""System checks for a safe configuration, and the deeper health checks of ``smi_doctor``.

The system checks (``manage.py check``) look at settings only, except the sweeper's
heartbeat, which reads the database and so runs with ``check --database default`` (and
before ``migrate``). ``doctor_findings`` adds what only a live site can tell: schedules
present, the worker alive, private storage writable, the email backend answering.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import stripe
from django.conf import settings
from django.core import checks
from django.core.files.base import ContentFile
from django.core.mail import get_connection
from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend
from django.db import DatabaseError
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import queue
from .conf import smi_settings
from .models import Heartbeat
from .models.health import SWEEPER
from .storage import is_local as storage_is_local
from .storage import private_storage, signing_problem
from .upscalers import get_upscaler
from .upscalers.realesrgan import RealEsrganUpscaler
from .upscalers.upsampler import UpsamplerUpscaler

# The sweeper runs every minute: this long without it means no worker runs the schedules.
SWEEPER_SILENCE = timedelta(minutes=5)
# Host names that never reach the internet, whatever they resolve to here.
LOCAL_NAME_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".lan",
    ".home.arpa",
    ".test",
    ".invalid",
    ".example",
)


def check_payment_backend(app_configs, **kwargs):
    backend = smi_settings.PAYMENT_BACKEND
    if backend == "dummy" and not (settings.DEBUG or smi_settings.ALLOW_DUMMY_PAYMENTS):
        return [
            checks.Error(
                "The dummy payment backend takes no money and is refused unless DEBUG is on.",
                hint='Set WAGTAIL_SMI["PAYMENT_BACKEND"] = "stripe", or '
                'WAGTAIL_SMI["ALLOW_DUMMY_PAYMENTS"] = True for a test site.',
                id="wagtail_smi.E001",
            )
        ]
    return []


def check_private_storage(app_configs, **kwargs):
    alias = smi_settings.PRIVATE_STORAGE
    storages = getattr(settings, "STORAGES", {})
    if alias not in storages:
        return [
            checks.Error(
                f"STORAGES has no {alias!r} entry for delivered files.",
                hint="Add a private storage (not served under MEDIA_URL) to STORAGES, "
                'or point WAGTAIL_SMI["PRIVATE_STORAGE"] at one.',
                id="wagtail_smi.E002",
            )
        ]
    return []


DOWNLOAD_SERVE_MODES = ("django", "redirect", "x-accel-redirect", "x-sendfile")


def check_download_serving(app_configs, **kwargs):
    """``DOWNLOAD_SERVE`` must suit the private storage: refused at start-up rather than
    found out by a customer (the download would otherwise be counted, then fail)."""
    mode = (smi_settings.DOWNLOAD_SERVE or "django").lower()
    if mode not in DOWNLOAD_SERVE_MODES:
        return [
            checks.Error(
                f'WAGTAIL_SMI["DOWNLOAD_SERVE"] is {mode!r}, not one of '
                f"{', '.join(DOWNLOAD_SERVE_MODES)}.",
                id="wagtail_smi.E020",
            )
        ]
    if mode == "django" or smi_settings.PRIVATE_STORAGE not in getattr(settings, "STORAGES", {}):
        return []
    if mode == "x-sendfile" and not storage_is_local():
        return [
            checks.Error(
                "X-Sendfile names a file on this machine, and the private storage keeps its "
                "files elsewhere.",
                hint='Use WAGTAIL_SMI["DOWNLOAD_SERVE"] = "redirect" (presigned URLs) or '
                '"django" with object storage.',
                id="wagtail_smi.E021",
            )
        ]
    if mode == "redirect":
        problem = signing_problem()
        if problem:
            return [
                checks.Error(
                    f"Downloads by presigned redirect need a storage that signs URLs: {problem}.",
                    hint="Use django-storages' S3 storage with querystring_auth on and no "
                    'custom_domain, or WAGTAIL_SMI["DOWNLOAD_SERVE"] = "django".',
                    id="wagtail_smi.E022",
                )
            ]
    if mode == "x-accel-redirect" and not storage_is_local():
        return [
            checks.Warning(
                "X-Accel-Redirect hands downloads to nginx, and the private storage keeps its "
                "files elsewhere: nginx must fetch them from there itself.",
                hint="docs/deployment.md has the tested config for a local folder; with object "
                'storage, "redirect" needs no nginx setup.',
                id="wagtail_smi.W020",
            )
        ]
    return []


def check_stripe_configuration(app_configs, **kwargs):
    if smi_settings.PAYMENT_BACKEND != "stripe":
        return []

    stripe_settings = smi_settings.STRIPE
    problems = []
    for key, hint in (
        ("SECRET_KEY", "the secret key from the Stripe dashboard (sk_live_… or sk_test_…)"),
        ("WEBHOOK_SECRET", "the signing secret of the /smi-webhook/stripe/ endpoint (whsec_…)"),
    ):
        if not stripe_settings.get(key):
            problems.append(
                checks.Warning(
                    f'WAGTAIL_SMI["STRIPE"]["{key}"] is empty: Stripe payments will fail.',
                    hint=f"Set it to {hint}, from the environment.",
                    id="wagtail_smi.W001" if key == "SECRET_KEY" else "wagtail_smi.W002",
                )
            )
    if stripe_settings.get("API_VERSION") != stripe.api_version:
        problems.append(
            checks.Warning(
                f"Stripe API version {stripe_settings.get('API_VERSION')!r} differs from the "
                f"{stripe.api_version!r} the installed stripe library is built for.",
                hint="Leave STRIPE API_VERSION at its default unless you have tested another.",
                id="wagtail_smi.W003",
            )
        )
    return problems


def public_https_problem(url: str) -> str:
    """Why ``url`` is not a public https address, judged by its form alone (no lookup):
    "" when it may well be one."""
    try:
        parts = urlsplit(url or "")
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme != "https":
        return "it is not https"
    if not host:
        return "it has no host name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(LOCAL_NAME_SUFFIXES) or "." not in host:
            return f"{host} is a local name"
        return ""
    return "" if address.is_global else f"{host} is not a public address"


def check_upscaler_configuration(app_configs, **kwargs):
    """The Upsampler backend needs its key, and a public https site to fetch originals
    from and call back: without them every paid order fails and is refunded."""
    try:
        upscaler = get_upscaler()
    except Exception as exc:  # an import error, a typo in CLASS, options it refuses
        return [
            checks.Error(
                f'WAGTAIL_SMI["UPSCALER"] cannot be loaded: {exc.__class__.__name__}: {exc}',
                hint='Point WAGTAIL_SMI["UPSCALER"]["CLASS"] at "local", "upsampler" or a '
                "BaseUpscaler subclass.",
                id="wagtail_smi.E003",
            )
        ]
    if not isinstance(upscaler, UpsamplerUpscaler):
        return []
    problems = []
    if not upscaler.options.get("API_KEY"):
        problems.append(
            checks.Warning(
                'The Upsampler backend is selected but WAGTAIL_SMI["UPSCALER"]["OPTIONS"]'
                '["API_KEY"] is empty: every paid order would fail and be refunded.',
                hint="Set it to the API key from your Upsampler account, from the "
                "environment (SMI_UPSAMPLER_API_KEY in the demo).",
                id="wagtail_smi.W004",
            )
        )
    base = smi_settings.PUBLIC_BASE_URL
    why = public_https_problem(base)
    if why:
        problems.append(
            checks.Warning(
                f'WAGTAIL_SMI["PUBLIC_BASE_URL"] ({base!r}) is not a public https address '
                f"({why}): Upsampler could not fetch the originals or call back, so paid "
                "orders would fail and be refunded.",
                hint="Set it to the https address the internet reaches this site at "
                "(SMI_PUBLIC_BASE_URL in the demo), or use the local upscaler.",
                id="wagtail_smi.W005",
            )
        )
    return problems


def check_realesrgan_extension(app_configs, **kwargs):
    """The Real-ESRGAN backend runs a compiled extension that links system libraries: if it
    cannot load, every paid order would be retried and then wait for an admin. Loaded the
    way the worker loads it (a child process of the same Python), so the answer is its."""
    try:
        upscaler = get_upscaler()
    except Exception:  # wagtail_smi.E003 reports it
        return []
    if not isinstance(upscaler, RealEsrganUpscaler):
        return []
    problem = upscaler.probe()
    if problem is None:
        return []
    return [
        checks.Error(
            f"The Real-ESRGAN upscaler cannot load its extension: {problem.message}",
            hint=problem.hint,
            id="wagtail_smi.E016",
        )
    ]


def sweeper_silence(now: datetime | None = None) -> str:
    """What to say when the sweeper has not run for ``SWEEPER_SILENCE`` ("" when it has)."""
    now = now or timezone.now()
    last = Heartbeat.last(SWEEPER)
    if last is None:
        return _(
            "The wagtail-smi sweeper has never run: no worker runs the schedules, so orders "
            "are not polled, retried, refunded or cleaned up."
        )
    if now - last < SWEEPER_SILENCE:
        return ""
    return _(
        "The wagtail-smi sweeper last ran %(ago)s ago: no worker seems to run the schedules, "
        "so orders are not polled, retried, refunded or cleaned up."
    ) % {"ago": timesince(last, now)}


SWEEPER_HINT = gettext_lazy(
    "Start a worker (python manage.py qcluster) and keep it running; the schedules are "
    "created by migrate (or python manage.py smi_schedules)."
)


def check_sweeper_heartbeat(app_configs, databases=None, **kwargs):
    """A database check: runs with ``check --database`` and before ``migrate``."""
    if not databases:
        return []
    try:
        message = sweeper_silence()
    except DatabaseError:  # not migrated yet
        return []
    if not message:
        return []
    return [checks.Warning(message, hint=SWEEPER_HINT, id="wagtail_smi.W006")]


def register() -> None:
    """Called from ``AppConfig.ready()``."""
    checks.register(check_payment_backend, checks.Tags.security)
    checks.register(check_private_storage)
    checks.register(check_download_serving)
    checks.register(check_stripe_configuration)
    checks.register(check_upscaler_configuration)
    checks.register(check_realesrgan_extension)
    checks.register(check_sweeper_heartbeat, checks.Tags.database)


# smi_doctor ----------------------------------------------------------------------------------

# System-check warnings that mean orders fail: the doctor calls them errors.
DOCTOR_ERRORS = frozenset(
    {
        "wagtail_smi.W001",
        "wagtail_smi.W002",
        "wagtail_smi.W004",
        "wagtail_smi.W005",
        "wagtail_smi.W006",
    }
)


def schedule_findings() -> list[checks.CheckMessage]:
    try:
        missing = queue.missing_schedules()
    except DatabaseError as exc:
        return [
            checks.Error(
                f"The django-q2 schedules cannot be read: {exc}",
                hint="Run python manage.py migrate.",
                id="wagtail_smi.E010",
            )
        ]
    return [
        checks.Error(
            f"The schedule {periodic.name!r} ({periodic.func}) is missing or altered.",
            hint="Run python manage.py migrate, or python manage.py smi_schedules.",
            id="wagtail_smi.E010",
        )
        for periodic in missing
    ]


def heartbeat_findings() -> list[checks.CheckMessage]:
    try:
        message = sweeper_silence()
    except DatabaseError as exc:
        message = f"The sweeper's heartbeat cannot be read: {exc}"
    return [checks.Error(message, hint=SWEEPER_HINT, id="wagtail_smi.W006")] if message else []


def storage_findings() -> list[checks.CheckMessage]:
    """Write a small file to private storage and delete it again."""
    alias = smi_settings.PRIVATE_STORAGE
    try:
        storage = private_storage()
        name = storage.save(f"wagtail_smi/.doctor-{uuid.uuid4().hex}", ContentFile(b"ok"))
        storage.delete(name)
    except Exception as exc:
        return [
            checks.Error(
                f"Private storage {alias!r} is not writable: {exc.__class__.__name__}: {exc}",
                hint="Delivered files are stored there: fix its location or permissions.",
                id="wagtail_smi.E011",
            )
        ]
    return []


def email_findings() -> list[checks.CheckMessage]:
    """Open and close a connection of the configured email backend (an SMTP backend
    connects and logs in; the file backend checks its folder). Nothing is sent."""
    try:
        connection = get_connection(fail_silently=False)
        if getattr(connection, "timeout", 0) is None:
            connection.timeout = 10
        if not isinstance(connection, FileEmailBackend):  # opening would leave an empty file
            connection.open()
            connection.close()
    except Exception as exc:
        return [
            checks.Error(
                f"The email backend ({settings.EMAIL_BACKEND}) does not work: "
                f"{exc.__class__.__name__}: {exc}",
                hint="Receipts, download links and admin alerts go out by email: check "
                "EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT and the credentials.",
                id="wagtail_smi.E012",
            )
        ]
    return []


def _as_doctor_sees_it(message: checks.CheckMessage) -> checks.CheckMessage:
    if message.id in DOCTOR_ERRORS and message.level < checks.ERROR:
        return checks.Error(message.msg, hint=message.hint, id=message.id)
    return message


def doctor_findings(*, worker: bool = True) -> list[checks.CheckMessage]:
    """Every configuration and health problem, the ones that make orders fail as errors.
    ``worker=False`` leaves out the sweeper's heartbeat (a deploy before workers start)."""
    found: list[checks.CheckMessage] = []
    for check in (
        check_payment_backend,
        check_private_storage,
        check_download_serving,
        check_stripe_configuration,
        check_upscaler_configuration,
        check_realesrgan_extension,
    ):
        found.extend(check(None))
    found.extend(schedule_findings())
    if worker:
        found.extend(heartbeat_findings())
    if not any(message.id == "wagtail_smi.E002" for message in found):
        found.extend(storage_findings())
    found.extend(email_findings())
    return [_as_doctor_sees_it(message) for message in found]
