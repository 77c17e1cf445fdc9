"""Line charts drawn with Pillow alone (no plotting library needed): the loss curve and the evaluation's plots."""

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(30, 90, 200), (220, 110, 20), (40, 150, 60), (200, 40, 40), (130, 70, 180), (120, 120, 120), (0, 170, 190),
           (190, 60, 150), (150, 120, 20), (0, 0, 0)]
"""Line colours, one per series in order."""

Series = tuple[Sequence[float | int], Sequence[float | int]]


def line_chart(
    series: dict[str, Series],
    path: str | Path,
    *,
    title: str,
    x_label: str,
    log_y: bool = True,
    dots: Sequence[str] = (),
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Draw named ``(xs, ys)`` series on common axes (y on a log scale if ``log_y``) with a legend and save a PNG.

    Series named in ``dots`` are drawn as grey points (e.g. raw values under a running mean); non-finite values,
    and non-positive ones on a log scale, are left out.
    """
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 15, 15, height - 35
    draw.rectangle([left, top, right, bottom], outline="black")
    scale = (lambda v: math.log10(v)) if log_y else (lambda v: v)  # noqa: E731
    kept = {
        name: [(float(x), scale(float(y))) for x, y in zip(xs, ys) if math.isfinite(y) and math.isfinite(x) and (y > 0 or not log_y)]
        for name, (xs, ys) in series.items()
    }
    points = [p for pairs in kept.values() for p in pairs]
    if points:
        x0, x1 = min(x for x, _ in points), max(x for x, _ in points)
        lo, hi = min(y for _, y in points), max(y for _, y in points)
        x1, hi = (x1 if x1 > x0 else x0 + 1), (hi if hi > lo else lo + 1)

        def xy(x: float, y: float) -> tuple[float, float]:
            return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top)

        legend = top + 20
        for k, (name, pairs) in enumerate(kept.items()):
            colour = COLOURS[k % len(COLOURS)]
            if name in dots:
                for x, y in pairs:
                    draw.point(xy(x, y), fill=(170, 170, 170))
                continue
            if len(pairs) > 1:
                draw.line([xy(x, y) for x, y in pairs], fill=colour, width=2)
            for x, y in pairs if len(pairs) < 16 else ():
                cx, cy = xy(x, y)
                draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
            draw.text((right - 150, legend), name, fill=colour)
            legend += 14
        for frac in (0.0, 0.5, 1.0):
            value = lo + frac * (hi - lo)
            draw.text((5, bottom - frac * (bottom - top) - 6), f"{10**value if log_y else value:.3g}", fill="black")
        draw.text((left, bottom + 8), f"{x_label} {x0:g}", fill="black")
        draw.text((right - 90, bottom + 8), f"{x_label} {x1:g}", fill="black")
    draw.text((left + 8, top + 4), title + (" (log scale)" if log_y else ""), fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def plot_loss_curve(steps: list[int], losses: list[float], path: str | Path, *, size: tuple[int, int] = (640, 360)) -> Path:
    """Draw loss against step on a log scale (raw points grey, a running mean in blue) and save it as a PNG."""
    pairs = [(s, v) for s, v in zip(steps, losses) if v > 0 and math.isfinite(v)]
    window = max(1, len(pairs) // 20)
    smooth = [sum(v for _, v in pairs[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(pairs))]
    xs = [s for s, _ in pairs]
    return line_chart({"loss": (xs, [v for _, v in pairs]), "running mean": (xs, smooth)}, path, title="training loss",
                      x_label="step", dots=("loss",), size=size)
