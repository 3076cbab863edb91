"""Every email the package sends, built in one place. Placeholder until delivery lands."""

import logging

logger = logging.getLogger(__name__)


def send_download_ready(job, token: str) -> None:
    logger.info("download ready for job %s", job.pk)


def send_refund_notice(job) -> None:
    logger.info("refund notice for job %s", job.pk)


def send_payment_failed(job) -> None:
    logger.info("payment failed for job %s", job.pk)


def send_admin_alert(job, message: str) -> None:
    logger.warning("admin alert for job %s: %s", job.pk, message)
