"""Peak memory of a worker upscaling one order, per upscaler (``python bench/worker_memory.py``).

What docs/deployment.md sizes worker machines with. Each case runs in a fresh process that
loads the site as a ``qcluster`` worker does (the demo's settings, ``django.setup()``, the
task module), then has the backend upscale a photo-like PNG original of the given size.
Reported: the worker's resident memory before (its baseline with Django, Wagtail and the
package loaded), its peak (``VmHWM``), and for ``realesrgan`` the peak of the child process
it upscales in (``RUSAGE_CHILDREN``), which comes on top while an order runs.

``--cases local:2000x1500x4,realesrgan:1000x750x4`` picks the cases.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = (
    "local:1000x750x4,local:2000x1500x4,local:2000x1500x8,"
    "realesrgan:1000x750x4,realesrgan:1000x750x8"
)


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def original(width: int, height: int) -> bytes:
    from PIL import Image

    noise = Image.effect_noise((width, height), 48)
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (noise, gradient, gradient.transpose(Image.Transpose.ROTATE_180)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def child(backend: str, width: int, height: int, factor: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("SMI_DEMO_VAR_DIR", tempfile.mkdtemp(prefix="smi-bench-"))
    sys.path.insert(0, str(ROOT))
    # Imported here, in the child only: the site is set up after the environment above,
    # and the parent must stay light so its memory never mixes with a case's.
    import django

    django.setup()
    from django.utils.module_loading import import_string

    import wagtail_smi.tasks  # noqa: F401 - what a worker has loaded before its first task
    from wagtail_smi.upscalers import ALIASES
    from wagtail_smi.upscalers.base import UpscaleRequest

    data = original(width, height)
    baseline = status_mb("VmRSS")
    upscaler = import_string(ALIASES[backend])({})
    request = UpscaleRequest(
        reference="bench",
        factor=factor,
        output_width=width * factor,
        output_height=height * factor,
        open_source=lambda: contextlib.nullcontext(io.BytesIO(data)),
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        result = upscaler.upscale(request, Path(folder))
        size = result.stat().st_size
    return {
        "backend": backend,
        "original": f"{width}x{height}",
        "factor": factor,
        "output_mp": round(width * factor * height * factor / 1e6, 1),
        "seconds": round(time.monotonic() - started, 1),
        "worker_baseline_mb": round(baseline),
        "worker_peak_mb": round(status_mb("VmHWM")),
        "child_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "result_mb": round(size / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, size = args.child.split(":")
        width, height, factor = (int(n) for n in size.split("x"))
        print(json.dumps(child(backend, width, height, factor)))
        return
    print("| Upscaler | Original | Factor | Output MP | Worker at rest | Worker peak | "
          "Child peak | Time (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        completed = subprocess.run(  # noqa: S603 - this script, by this Python
            [sys.executable, __file__, "--child", case],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            print(f"| {case} | failed: {completed.stderr.strip().splitlines()[-1:]} |")
            continue
        row = json.loads(completed.stdout.strip().splitlines()[-1])
        child_peak = f"{row['child_peak_mb']} MB" if row["backend"] == "realesrgan" else "—"
        print(
            f"| `{row['backend']}` | {row['original']} | {row['factor']}x | {row['output_mp']} "
            f"| {row['worker_baseline_mb']} MB | {row['worker_peak_mb']} MB | {child_peak} "
            f"| {row['seconds']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
