"""Models, one module per concern: jobs (orders and their log), catalog (what is for sale),
analytics (clicks), webhooks (processed provider events), settings (site pricing rules)."""

from .analytics import ImageClick
from .catalog import ImageForSale, SaleListing
from .jobs import DownloadEvent, EventCode, JobEvent, PurchaseJob
from .settings import SmiSiteSettings
from .states import STATE_FACTS, JobStatus, StateFacts
from .webhooks import ProcessedWebhookEvent

__all__ = [
    "DownloadEvent",
    "EventCode",
    "ImageClick",
    "ImageForSale",
    "JobEvent",
    "JobStatus",
    "ProcessedWebhookEvent",
    "PurchaseJob",
    "SaleListing",
    "STATE_FACTS",
    "SmiSiteSettings",
    "StateFacts",
]
