"""A loss curve drawn with Pillow alone (no plotting library needed)."""

import math
from pathlib import Path

from PIL import Image, ImageDraw


def plot_loss_curve(steps: list[int], losses: list[float], path: str | Path, *, size: tuple[int, int] = (640, 360)) -> Path:
    """Draw loss against step on a log scale (raw points grey, a running mean in blue) and save it as a PNG."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 15, 15, height - 35
    draw.rectangle([left, top, right, bottom], outline="black")
    pairs = [(s, v) for s, v in zip(steps, losses) if v > 0 and math.isfinite(v)]
    if len(pairs) >= 2:
        lo = math.log10(min(v for _, v in pairs))
        hi = math.log10(max(v for _, v in pairs))
        hi = hi if hi > lo else lo + 1
        s0, s1 = pairs[0][0], max(pairs[-1][0], pairs[0][0] + 1)

        def xy(step: int | float, value: float) -> tuple[float, float]:
            return (left + (step - s0) / (s1 - s0) * (right - left), bottom - (math.log10(value) - lo) / (hi - lo) * (bottom - top))

        for s, v in pairs:
            draw.point(xy(s, v), fill=(170, 170, 170))
        window = max(1, len(pairs) // 20)
        smooth = [sum(v for _, v in pairs[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(pairs))]
        draw.line([xy(s, v) for (s, _), v in zip(pairs, smooth)], fill=(30, 90, 200), width=2)
        for frac in (0.0, 0.5, 1.0):
            value = 10 ** (lo + frac * (hi - lo))
            y = bottom - frac * (bottom - top)
            draw.text((5, y - 6), f"{value:.3g}", fill="black")
        draw.text((left, bottom + 8), f"step {s0}", fill="black")
        draw.text((right - 90, bottom + 8), f"step {pairs[-1][0]}", fill="black")
    draw.text((left + 8, top + 4), "training loss (log scale)", fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
