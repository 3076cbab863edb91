"""Run the demo web server and a django-q2 worker together; Ctrl-C stops both.

Used by ``make demo``. Each child gets its own process group so that one Ctrl-C reaches
this supervisor, which then stops both children in order and waits for them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from demo_site.credentials import ADMIN_PASSWORD, ADMIN_USERNAME  # noqa: E402

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")
# Absolute links (checkout, status, emails) must reach this server, whatever the port.
os.environ.setdefault("SMI_PUBLIC_BASE_URL", f"http://{HOST}:{PORT}")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    worker = start("qcluster")
    web = start("runserver", f"{HOST}:{PORT}")
    print(f"Serving on http://{HOST}:{PORT}/ with a worker. Ctrl-C stops both.", flush=True)
    print(
        f"Admin: http://{HOST}:{PORT}/admin/  (user {ADMIN_USERNAME}, password {ADMIN_PASSWORD})",
        flush=True,
    )
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping and web.poll() is None and worker.poll() is None:
            time.sleep(0.3)
    finally:
        print("\nStopping the web server and the worker...", flush=True)
        stop(web)
        stop(worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
