"""Peak worker memory of the local upscaler per output size (``python bench/upscale_memory.py``).

Each measurement runs in a fresh child process, so peaks never mix: the child makes an
original of the given size, upscales it, and reports its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) before and after. Two ways are measured:

- ``plain``: one ``resize`` of the whole image (how the local upscaler worked before);
- ``strips``: ``wagtail_smi.upscalers.local.upscale_file`` (strip-wise resizing).

The "growth" column (peak after minus peak before the upscale) is what a worker process
needs on top of its own baseline; bytes per output pixel is that growth over the output
size. ``--sizes 1000x750x4,2000x1500x8`` picks the cases; ``--format PNG`` the original's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = "1000x750x4,1000x750x8,1500x1000x8,2000x1500x8"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_original(width: int, height: int, fmt: str, folder: Path) -> Path:
    from PIL import Image

    noise = Image.effect_noise((width, height), 48)
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (noise, gradient, gradient.transpose(Image.Transpose.ROTATE_180)))
    path = folder / f"original.{fmt.lower()}"
    image.save(path, format=fmt)
    image.close()
    return path


def child(mode: str, width: int, height: int, factor: int, fmt: str) -> None:
    sys.path.insert(0, str(ROOT))
    from django.conf import settings
    from PIL import Image

    settings.configure(USE_I18N=False)  # the upscaler needs no project, only defaults
    from wagtail_smi.upscalers.local import upscale_file

    size = (width * factor, height * factor)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        original = make_original(width, height, fmt, folder)
        before = peak_mb()
        if mode == "plain":
            with Image.open(original) as opened:
                source = opened.convert("RGB")
            result = source.resize(size, Image.Resampling.LANCZOS)
            source.close()
            out = folder / "plain.jpg" if fmt == "JPEG" else folder / "plain.png"
            result.save(
                out,
                format="JPEG" if fmt == "JPEG" else "PNG",
                **({"quality": 92} if fmt == "JPEG" else {}),
            )
            result.close()
        else:
            with open(original, "rb") as f:
                out = upscale_file(f, folder, size)
        after = peak_mb()
        out.unlink()
    print(json.dumps({"before_mb": before, "after_mb": after}))


def measure(mode: str, width: int, height: int, factor: int, fmt: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(width), str(height), str(factor), fmt],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="comma-separated WIDTHxHEIGHTxFACTOR of the originals",
    )
    parser.add_argument(
        "--format", default="JPEG", choices=["JPEG", "PNG"], help="format of the originals"
    )
    parser.add_argument("--modes", default="plain,strips")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, width, height, factor, fmt = args.child
        child(mode, int(width), int(height), int(factor), fmt)
        return
    print(
        f"{'original':>11} {'factor':>6} {'output MP':>9} {'mode':>6} {'peak MB':>8} {'growth MB':>9} {'B/px':>5}"
    )
    for spec in args.sizes.split(","):
        width, height, factor = (int(part) for part in spec.lower().split("x"))
        megapixels = width * height * factor * factor / 1_000_000
        for mode in args.modes.split(","):
            result = measure(mode, width, height, factor, args.format)
            growth = result["after_mb"] - result["before_mb"]
            per_pixel = growth * 1024 * 1024 / (megapixels * 1_000_000)
            print(
                f"{width:>5}×{height:<5} {factor:>6} {megapixels:>9.1f} {mode:>6} "
                f"{result['after_mb']:>8.0f} {growth:>9.0f} {per_pixel:>5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
