"""Models, one module per concern: jobs (orders and their log), catalog (what is for sale),
analytics (clicks), webhooks (processed provider events), settings (site pricing rules),
health (when the periodic tasks last ran), rollup (the reports' daily figures)."""

from .analytics import ImageClick
from .catalog import ImageForSale, ImagePrice, SaleListing
from .health import Heartbeat
from .jobs import DownloadEvent, EventCode, JobEvent, PurchaseJob
from .refunds import RefundRequest
from .rollup import ReportCustomer, ReportItemCustomer, ReportRollup, RollupState
from .settings import SmiSiteSettings
from .states import STATE_FACTS, JobStatus, StateFacts
from .webhooks import ProcessedWebhookEvent

__all__ = [
    "DownloadEvent",
    "EventCode",
    "Heartbeat",
    "ImageClick",
    "ImageForSale",
    "ImagePrice",
    "JobEvent",
    "JobStatus",
    "ProcessedWebhookEvent",
    "PurchaseJob",
    "RefundRequest",
    "ReportCustomer",
    "ReportItemCustomer",
    "ReportRollup",
    "RollupState",
    "SaleListing",
    "STATE_FACTS",
    "SmiSiteSettings",
    "StateFacts",
]
