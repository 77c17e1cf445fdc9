"""The evaluation's written report: a markdown table of every score beside its floor, plots of the per-level
distances and of the radial power spectra, and a picture of samples, baselines and real data."""

import json
import math
from pathlib import Path

from funcdiff._typing import Tensor
from funcdiff.domains.io import side_by_side, write_png
from funcdiff.evaluation.study import Study
from funcdiff.metrics import radial_power_spectrum
from funcdiff.training.plots import line_chart


def _number(value: float | None, digits: int = 1) -> str:
    """A table cell: the value rounded, or a dash when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table(study: Study) -> str:
    """The study as a markdown table, one row per resolution (distances: lower is better)."""
    head = ("| px | SWD finest x1e3: samples / bicubic / floor | samples / floor | detail gain | SWD mean | "
            "FD samples / floor | KID x1e3 | high-band spectrum: samples / bicubic / floor | box-avg to r: SWD finest / r floor | s/sample |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in study.rows:
        b = row.bicubic
        lines.append("| " + " | ".join([
            str(row.resolution),
            f"{_number(row.samples.swd[0])} / {_number(b.swd[0] if b else None)} / {_number(row.floor.swd[0])}",
            _number(row.finest_to_floor, 2),
            _number(row.detail_gain, 2),
            f"{_number(row.samples.swd_mean)} (floor {_number(row.floor.swd_mean)})",
            f"{_number(row.samples.fd, 3)} / {_number(row.floor.fd, 3)}",
            f"{_number(row.samples.kid * 1e3, 2)} (floor {_number(row.floor.kid * 1e3, 2)})",
            f"{_number(row.samples.spectrum, 3)} / {_number(b.spectrum if b else None, 3)} / {_number(row.floor.spectrum, 3)}",
            _number(study.box_to_floor(row), 2),
            _number(row.seconds_per_sample, 3),
        ]) + " |")
    return "\n".join(lines)


def write_report(
    study: Study,
    out_dir: str | Path,
    *,
    samples: dict[int, Tensor],
    real: dict[int, Tensor],
    title: str,
    details: dict[str, object],
) -> Path:
    """Write ``report.md``, ``scores.json``, ``swd_levels.png``, ``spectra.png`` and ``samples.png`` into ``out_dir``.

    ``samples`` and ``real`` hold each resolution's image sets (the pictures and spectra are drawn from them);
    ``details`` (checkpoint, sampler, counts, seed) is recorded in both files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps({**study.to_dict(), "details": details}, indent=2))
    levels: dict[str, tuple[list[float], list[float]]] = {}
    for row in study.rows:
        for name in ("samples", "bicubic", "floor"):
            scores = getattr(row, name)
            if scores is not None:
                levels[f"{row.resolution} px {name}"] = (list(range(len(scores.swd))), list(scores.swd))
    line_chart(levels, out / "swd_levels.png", title="SWD x 1e3 per pyramid level (0 = finest)", x_label="level", size=(720, 400))
    spectra: dict[str, tuple[list[float], list[float]]] = {}
    for side, x in sorted(samples.items()):
        for name, images in (("samples", x), ("real", real[side])):
            power = radial_power_spectrum(images).tolist()[1 : side // 2 + 1]  # no DC (means are removed), to Nyquist
            spectra[f"{side} px {name}"] = ([k / side for k in range(1, len(power) + 1)], [10**p for p in power])
    line_chart(spectra, out / "spectra.png", title="radial power spectrum", x_label="cycles/px", size=(720, 400))
    rows = [samples[side] for side in sorted(samples)] + [real[max(samples)]]
    write_png(side_by_side(rows, count=8), out / "samples.png")
    r = study.training_resolution
    described = "\n".join(f"- {key}: {value}" for key, value in details.items())
    text = f"""# {title}

{described}

Distances to held-out real data at each resolution (lower is better), each beside the floor: a second, disjoint real
set scored the same way. SWD: sliced Wasserstein distance on 7 x 7 patches of each Laplacian-pyramid level (Karras et
al. 2018); FD / KID: Fréchet and kernel distances on the features of a fixed random convolutional network; spectrum:
RMS difference of the log10 radial power spectrum over the high band [H/4, H/2). Above the training resolution
({r} px), "bicubic" is the {r} px samples upsampled bicubically (the model adding no detail), the detail gain is the
share of the bicubic-to-floor gap on the finest level that the samples close (0: no detail beyond bicubic, 1: as
real data), and "box-avg to r" box-averages the samples back to {r} px and compares them with real {r} px data, as a
multiple of the {r} px floor.

{table(study)}

![SWD per level](swd_levels.png)

![Radial power spectra](spectra.png)

Rows of `samples.png`: the samples at {", ".join(f"{s} px" for s in sorted(samples))} (nested noise: the same seeds),
then real data at {max(samples)} px (other images), all enlarged to a common size.

![Samples](samples.png)
"""
    path = out / "report.md"
    path.write_text(text)
    return path
