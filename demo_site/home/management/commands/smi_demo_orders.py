"""Sample orders, clicks and event logs for the demo admin (orders list, reports, dashboard).

Run after ``smi_demo_content``. Idempotent: demo orders carry a ``cs_demo_`` checkout session
id, and when they exist nothing is added again. The data is seeded directly (a fixture, like
the tests' ``make_job``), with states, timestamps and event logs consistent with the state
machine; real orders only ever change through ``wagtail_smi.workflow.transition``.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from wagtail.images import get_image_model
from wagtail.models import Site

from demo_site.home.models import GalleryPage
from wagtail_smi.models import EventCode, ImageClick, JobEvent, JobStatus, PurchaseJob
from wagtail_smi.pricing import PricingRules, quote

from .smi_demo_content import DEMO_IMAGES

S = JobStatus
PREFIX = "cs_demo_"
DAYS = 60
ORDERS = 90
SEED = 20260101

# Paths through the state machine, with how often each happens.
PATHS = [
    ((S.PAID, S.PROCESSING, S.COMPLETED), 62),
    ((S.ABANDONED,), 14),
    ((S.PAID, S.PROCESSING, S.COMPLETED, S.REFUNDED), 3),
    ((S.PAID, S.PROCESSING, S.FAILED, S.REFUNDED), 2),
    ((), 4),  # still awaiting payment
    ((S.PAID, S.PROCESSING, S.NEEDS_ATTENTION), 3),
    ((S.PAID, S.PROCESSING, S.FAILED, S.NEEDS_ATTENTION), 2),
]
# What each step of the sample orders records (event code and data, as the operations do).
EVENTS = {
    S.PAID: (EventCode.PAYMENT_RECEIVED, {"provider": "stripe"}),
    S.PROCESSING: (EventCode.PROCESSING_STARTED, {"upscaler": "local"}),
    S.COMPLETED: (EventCode.DELIVERED, {}),
    S.ABANDONED: (EventCode.CHECKOUT_ABANDONED, {"provider": "stripe"}),
    S.FAILED: (
        EventCode.PROCESSING_FAILED,
        {"reason": "upscale_failed", "detail": "upscaler reported FAILED"},
    ),
    S.REFUNDED: (EventCode.REFUNDED, {"reason": "Customer asked"}),
    S.NEEDS_ATTENTION: (
        EventCode.NEEDS_ATTENTION,
        {"detail": "The upscaler did not answer before the deadline."},
    ),
}
STAMPS = {
    S.PAID: "paid_at",
    S.PROCESSING: "processing_at",
    S.COMPLETED: "completed_at",
    S.ABANDONED: "abandoned_at",
    S.FAILED: "failed_at",
    S.REFUNDED: "refunded_at",
    S.NEEDS_ATTENTION: "needs_attention_at",
}


class Command(BaseCommand):
    help = "Add sample orders, clicks and event logs for the demo admin (idempotent)."

    def handle(self, *args, **options):
        if PurchaseJob.objects.filter(checkout_session_id__startswith=PREFIX).exists():
            self.stdout.write("Demo orders already exist; nothing added.")
            return
        gallery = GalleryPage.objects.filter(slug="gallery").first()
        titles = [spec[0] for spec in DEMO_IMAGES]
        images = list(get_image_model().objects.filter(title__in=titles).order_by("pk"))
        if gallery is None or not images:
            raise CommandError("Run smi_demo_content first: the demo gallery is missing.")
        with transaction.atomic():
            created = self.seed(gallery, images, Site.objects.filter(is_default_site=True).first())
        self.stdout.write(
            self.style.SUCCESS(f"Added {created} demo orders with clicks and events.")
        )

    def seed(self, gallery, images, site) -> int:
        rng = random.Random(SEED)
        now = timezone.now().replace(microsecond=0)
        rules = PricingRules()
        weights = [w for _path, w in PATHS]
        customers = [f"customer{n:02d}@example.com" for n in range(40)]
        event_times: list[tuple[PurchaseJob, list[tuple[str, str, object]]]] = []
        clicks_per_bucket: dict[tuple[int, int], int] = {}

        for n in range(ORDERS):
            image = rng.choice(images)
            option = rules.option("8x" if rng.random() < 0.3 else "4x")
            priced = quote(image.width, image.height, option, rules)
            created = now - timedelta(days=rng.randrange(DAYS), minutes=rng.randrange(24 * 60))
            path = rng.choices([p for p, _w in PATHS], weights)[0]
            job = PurchaseJob(
                site=site,
                image=image,
                image_ref=image.pk,
                image_title=image.title,
                page=gallery,
                page_ref=gallery.pk,
                page_title=gallery.title,
                resolution=option.key,
                factor=option.factor,
                original_width=image.width,
                original_height=image.height,
                output_width=priced.output_width,
                output_height=priced.output_height,
                amount_cents=priced.price_cents,
                currency="eur" if rng.random() < 0.15 else "usd",
                credits=priced.credits,
                email="" if not path else rng.choice(customers),
                payment_provider="dummy",
                checkout_session_id=f"{PREFIX}{n:04d}",
                status=path[-1] if path else S.AWAITING_PAYMENT,
            )
            history = follow_path(job, path, created, rng)
            fill_in_path_facts(job, path, n, priced, rng)
            job.save()
            event_times.append((job, created, history))
            day = (now - created).days
            clicks_per_bucket[(image.pk, day)] = clicks_per_bucket.get(
                (image.pk, day), 0
            ) + rng.randint(2, 6)

        for image in images:  # browsing without buying
            for day in rng.sample(range(DAYS), 25):
                clicks_per_bucket[(image.pk, day)] = clicks_per_bucket.get(
                    (image.pk, day), 0
                ) + rng.randint(1, 4)

        for job, created, history in event_times:
            PurchaseJob.objects.filter(pk=job.pk).update(created_at=created)
            for from_status, to_status, at in history:
                code, data = EVENTS[to_status]
                event = JobEvent.objects.create(
                    job=job, from_status=from_status, to_status=to_status, code=code, data=data
                )
                JobEvent.objects.filter(pk=event.pk).update(created_at=at)

        for (image_ref, day), count in clicks_per_bucket.items():
            made = ImageClick.objects.bulk_create(
                [
                    ImageClick(
                        image_ref=image_ref, page_ref=gallery.pk, site_ref=getattr(site, "pk", None)
                    )
                    for _ in range(count)
                ]
            )
            ImageClick.objects.filter(pk__in=[click.pk for click in made]).update(
                created_at=now - timedelta(days=day, hours=1)
            )
        return ORDERS


def follow_path(job, path, created, rng) -> list[tuple[str, str, object]]:
    """Stamp each step's time on the order; the (from, to, when) moves, for its event log."""
    moments, at, history = {}, created, []
    previous = S.AWAITING_PAYMENT
    for state in path:
        at = at + timedelta(minutes=rng.randint(1, 20))
        moments[STAMPS[state]] = at
        history.append((previous, state, at))
        previous = state
    for name, value in moments.items():
        setattr(job, name, value)
    return history


def fill_in_path_facts(job, path, n: int, priced, rng) -> None:
    """What the steps taken leave on an order: payment id, upscaler, refund, error."""
    if S.PAID in path:
        job.payment_intent_id = f"pi_demo_{n:04d}"
    if S.PROCESSING in path:
        job.upscale_cost_cents = priced.cost_cents
        job.upscaler = "local"
    if S.REFUNDED in path:
        job.refund_amount_cents = job.amount_cents
        job.refund_reason = rng.choice(["Customer asked", "Processing failed"])
    if path and path[-1] == S.NEEDS_ATTENTION:
        job.last_error = "The upscaler did not answer before the deadline."
