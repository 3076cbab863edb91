"""Fault: the worker is killed with SIGKILL in the middle of an upscale, then started again.

The shop runs in subprocesses (``tests.fault_support.Shop``): a real ``qcluster`` on the
stack's broker takes the paid order, submits it to the fake Upsampler and, once the
upscale is done, starts downloading the result, which the fake holds halfway. The whole
cluster is then killed (no clean-up code runs), the worker started again, and the order
must end delivered exactly once: one submission, one stored file, one email.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.fault_support import DOWNLOAD_LINK
from tests.upsampler_server import FakeUpsampler

pytestmark = pytest.mark.faults


def wait_until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.5)


def test_worker_sigkilled_mid_upscale_and_restarted_delivers_one_file_and_one_email(make_shop):
    with FakeUpsampler(api_key="k") as upsampler:
        upsampler.result_size = (240, 160)
        upsampler.result_hold = threading.Event()
        shop = make_shop(
            SMI_UPSCALER="upsampler",
            SMI_UPSAMPLER_API_KEY="k",
            SMI_UPSAMPLER_API_BASE=upsampler.api_base,
            SMI_ALLOW_PRIVATE_URLS="1",
        )
        shop.start_worker()
        job_id = shop.paid_order()

        # The upscale is done and the worker is downloading the result: kill it there.
        wait_until(lambda: upsampler.calls("GET", "/files/"), "the result download")
        shop.kill_worker()
        upsampler.result_hold.set()  # later downloads go through

        job = shop.job(job_id)
        assert job["status"] == "processing"
        assert (job["result_path"], job["token_hash"]) == ("", "")
        assert shop.files() == [] and shop.mails_to("buyer@example.com", DOWNLOAD_LINK) == []

        # Started again. The killed worker's lease on the order runs out (as if its
        # minutes had passed), and the sweeper hands the order out, as its schedule does.
        shop.start_worker()
        shop.shell(
            "from django.utils import timezone\n"
            "from wagtail_smi.models import PurchaseJob\n"
            "from wagtail_smi.operations.maintenance import OVERDUE_AFTER\n"
            f"PurchaseJob.objects.filter(pk={job_id!r})"
            ".update(next_attempt_at=timezone.now() - OVERDUE_AFTER)\n"
        )
        shop.manage("smi_sweep")
        job = shop.wait_for(job_id, lambda j: j["status"] == "completed", "the delivery")
        time.sleep(2)  # a second delivery, were there one, would have its moment here
        shop.stop_worker()

    assert len(upsampler.submits) == 1  # the upscaler was paid once
    [stored] = shop.files()
    assert stored.relative_to(shop.private).as_posix() == job["result_path"]
    assert len(shop.mails_to("buyer@example.com", DOWNLOAD_LINK)) == 1
    events = shop.shell(
        "from wagtail_smi.models import JobEvent\n"
        f"print(JobEvent.objects.filter(job_id={job_id!r}, to_status='completed').count())"
    )
    assert events.splitlines()[-1] == "1"
    shop.assert_consistent()
