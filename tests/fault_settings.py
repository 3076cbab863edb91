"""Settings of the shops the fault tests start in subprocesses (``tests.fault_support.Shop``):
the demo's, as ``make demo`` runs them, with the waits shortened so a test sees a poll, a
retry or a restarted worker in seconds rather than minutes. Nothing else differs."""

import os

from demo_site.settings import *  # noqa: F403
from demo_site.settings import Q_CLUSTER, WAGTAIL_SMI

# A task runs at most 20 s, and is handed out again after 40 s (timeout below retry); a
# queue of its own, so that shops started at the same time never take each other's tasks.
Q_CLUSTER = {
    **Q_CLUSTER,
    "name": os.environ.get("SMI_FAULTS_QUEUE", "wagtail_smi_faults"),
    "workers": 1,
    "timeout": 20,
    "retry": 40,
}
WAGTAIL_SMI = {
    **WAGTAIL_SMI,
    "POLL_START_SECONDS": 1,
    "POLL_MAX_INTERVAL_SECONDS": 2,
    "RETRY_BASE_SECONDS": 1,
    "RETRY_MAX_SECONDS": 2,
}
