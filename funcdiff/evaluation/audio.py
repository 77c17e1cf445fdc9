"""The audio evaluation end to end: score clips at several sample rates against real clips (`run_audio_study`) and
write the report: a table of every score beside its floor, spectrograms on one frequency axis, and mean spectra."""

import json
import math
from pathlib import Path

import torch

from funcdiff._typing import Float, Tensor
from funcdiff.domains.io import image_grid, read_wav, write_png
from funcdiff.domains.sound_pictures import spectrogram_picture
from funcdiff.evaluation.audio_study import AudioStudy, band_limited, run_audio_study
from funcdiff.evaluation.report import _number
from funcdiff.evaluation.study import real_sets
from funcdiff.metrics.audio import mean_log_spectrum
from funcdiff.training.plots import line_chart


def read_wav_folder(folder: str | Path) -> tuple[int, Float[Tensor, "n 1 m"]]:
    """Every WAV file in ``folder`` (sorted by name) as one batch of mono clips, and their sample rate; all must be
    mono and share one rate and length (e.g. a `sample` run's ``samples/8000Hz``)."""
    paths = sorted(Path(folder).glob("*.wav"))
    if not paths:
        raise ValueError(f"{folder}: no WAV files in this folder")
    clips, rates = zip(*(read_wav(p) for p in paths))
    if {c.shape[0] for c in clips} != {1}:
        raise ValueError(f"{folder}: the clips must be mono, found {sorted({c.shape[0] for c in clips})} channels")
    if len(set(rates)) != 1 or len({c.shape[1] for c in clips}) != 1:
        raise ValueError(f"{folder}: the clips must share one sample rate and length, found rates {sorted(set(rates))} "
                         f"and lengths {sorted({c.shape[1] for c in clips})}")
    return rates[0], torch.stack(clips)


def audio_table(study: AudioStudy) -> str:
    """The study as a markdown table, one row per sample rate (distances: lower is better)."""
    head = ("| rate Hz | spectral dB: samples / floor | high band dB: samples / baseline / floor | detail gain | "
            "mel FD: samples / floor | median f0 Hz: samples / data | median HNR dB: samples / data | "
            "f0 distance st: samples / floor | quiet frames dB: samples / data | mirror corr. | s/sample |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in study.rows:
        s, f, b = row.samples, row.floor, row.baseline
        lines.append("| " + " | ".join([
            str(row.rate),
            f"{_number(s.spectral, 2)} / {_number(f.spectral, 2)}",
            f"{_number(s.high_band, 2)} / {_number(b.high_band if b else None, 2)} / {_number(f.high_band, 2)}",
            _number(row.detail_gain, 2),
            f"{_number(s.mel_fd)} / {_number(f.mel_fd)}",
            f"{_number(row.pitch.median_f0)} / {_number(row.data_pitch.median_f0)}",
            f"{_number(row.pitch.median_hnr)} / {_number(row.data_pitch.median_hnr)}",
            f"{_number(row.pitch.f0_distance, 2)} / {_number(row.data_pitch.f0_distance, 2)}",
            f"{_number(row.quiet_db)} / {_number(row.data_quiet_db)}",
            _number(row.mirror, 2),
            _number(row.seconds_per_sample, 3),
        ]) + " |")
    return "\n".join(lines)


def _stacked(pictures: list[Float[Tensor, "3 _h _w"]]) -> Float[Tensor, "3 H W"]:
    """Pictures one above the other, each padded on the right and bottom with white to the largest size."""
    height, width = max(p.shape[1] for p in pictures), max(p.shape[2] for p in pictures)
    padded = [torch.nn.functional.pad(p, (0, width - p.shape[2], 0, height - p.shape[1]), value=1.0) for p in pictures]
    return image_grid(torch.stack(padded), nrow=1, pad=4, fill=1.0)


def write_audio_report(
    study: AudioStudy,
    out_dir: str | Path,
    *,
    samples: dict[int, Float[Tensor, "_b 1 _n"]],
    real: dict[int, Float[Tensor, "_m 1 _n"]],
    title: str = "Audio evaluation",
    details: dict[str, object] | None = None,
    count: int = 8,
) -> Path:
    """Write ``report.md``, ``scores.json``, ``spectrograms.png`` and ``spectra.png`` into ``out_dir``; returns the
    report's path.

    ``samples`` and ``real`` hold each rate's sample and held-out clips (the pictures and spectra are drawn from
    them, ``count`` clips a row); ``details`` (checkpoint, sampler, counts, seed) is recorded in both files.

    Raises:
        ValueError: if ``real`` lacks the highest rate of ``samples``.
    """
    details = details or {}
    top, r = max(samples), study.training_rate
    if top not in real:
        raise ValueError(f"real must hold the held-out clips at the highest rate, {top} Hz; it holds {sorted(real)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps({**study.to_dict(), "details": details}, indent=2))
    sets = [(f"held-out {top} Hz", real[top], top)] + [(f"samples {rate} Hz", x, rate) for rate, x in sorted(samples.items())]
    if top > r and r in samples:
        sets.append((f"baseline {r} -> {top} Hz", band_limited(samples[r], r, top, length=real[top].shape[-1]), top))
    pictures = [spectrogram_picture(x[:count], rate, max_frequency=top / 2, per_row=count) for _, x, rate in sets]
    write_png(_stacked(pictures), out / "spectrograms.png")
    spectra: dict[str, tuple[list[float], list[float]]] = {}
    for name, x, rate in sets:
        db = mean_log_spectrum(x, rate).tolist()
        spectra[name] = ([k * rate / (2 * (len(db) - 1)) for k in range(len(db))], db)
    line_chart(spectra, out / "spectra.png", title="mean power spectrum (dB re full scale), 32 ms windows", x_label="Hz",
               log_y=False, size=(720, 400))
    described = "\n".join(f"- {key}: {value}" for key, value in details.items())
    text = f"""# {title}

{described}

Distances to held-out clips at each sample rate (lower is better), each beside the floor: a disjoint set of training
clips, as many, scored the same way. Spectral: RMS difference in dB of the two sets' mean log-power spectra (STFT
windows of 16, 32 and 64 ms); high band: the same over the band above {r / 2:g} Hz, which the training rate ({r} Hz)
cannot hold; mel FD: Fréchet distance between Gaussians fitted to per-clip log-mel statistics. Above the training
rate, "baseline" is the {r} Hz samples resampled band-limited (the model adding nothing above {r / 2:g} Hz), and the
detail gain is the share of the baseline-to-floor gap on the high band that the samples close (0: nothing beyond
resampling, 1: as real data). The baseline's high band is empty (counted at -100 dB), so any energy there closes
much of the gap (white noise scores a gain of ~0.8 on notes): read the gain beside the high-band distance and its
floor. Pitch (Boersma 1993 autocorrelation): median f0 and harmonic-to-noise ratio of the
samples beside the held-out clips ("data"), and the f0 distance: the 1-Wasserstein distance in semitones between the
sets' f0 distributions, samples to held-out beside training to held-out (the floor). Quiet frames: the 5th
percentile of the power of all 32 ms frames (dB re full scale, -100 for exact silence), the sets' noise floor; the
log-mel statistics count every frame's log energy, so a noise floor far above the data's raises the mel FD.

{audio_table(study)}

![Mean spectra](spectra.png)

Rows of `spectrograms.png`, {", ".join(name for name, _, _ in sets)}, each {min(count, min(len(x) for _, x, _ in sets))}
clips on one frequency axis from 0 (bottom) to {top / 2:g} Hz, so bands line up (black above a row's own Nyquist
frequency); samples at different rates share their seeds. Colours span 80 dB below each row's loudest cell.

![Spectrograms](spectrograms.png)
"""
    path = out / "report.md"
    path.write_text(text)
    return path


def describe_audio(study: AudioStudy) -> str:
    """A few lines for the terminal: per rate, the distances beside the floor, the detail gain, and the pitch."""
    lines = []
    for row in study.rows:
        s, f, b = row.samples, row.floor, row.baseline
        parts = [f"{row.rate:>6} Hz: spectral {s.spectral:.2f} dB (floor {f.spectral:.2f})"]
        if s.high_band is not None:
            baseline = f"baseline {b.high_band:.2f}, " if b is not None else ""
            parts.append(f"high band {s.high_band:.2f} dB ({baseline}floor {f.high_band:.2f})")
        if row.detail_gain is not None:
            parts.append(f"detail gain {row.detail_gain:.2f}" if math.isfinite(row.detail_gain) else "detail gain n/a")
        if row.mirror is not None:
            parts.append(f"mirror correlation {row.mirror:.2f}")
        parts.append(f"mel FD {s.mel_fd:.1f} (floor {f.mel_fd:.1f})")
        parts.append(f"f0 {row.pitch.median_f0:.0f} Hz (data {row.data_pitch.median_f0:.0f}), HNR {row.pitch.median_hnr:.1f} dB "
                     f"(data {row.data_pitch.median_hnr:.1f}), f0 distance {row.pitch.f0_distance:.2f} st "
                     f"(floor {row.data_pitch.f0_distance:.2f})")
        parts.append(f"quiet frames {row.quiet_db:.1f} dB (data {row.data_quiet_db:.1f})")
        lines.append("; ".join(parts))
    return "\n".join(lines)


def evaluate_audio(
    samples: dict[int, Float[Tensor, "_b 1 _n"]],
    *,
    data: str | Path,
    training_rate: int,
    out_dir: str | Path,
    seconds_per_sample: dict[int, float] | None = None,
    seed: int = 0,
    data_limit: int | None = None,
    details: dict[str, object] | None = None,
    title: str = "Audio evaluation",
) -> tuple[AudioStudy, Path]:
    """Score each rate's clips against as many held-out clips of ``data`` there (the floor from as many training
    clips; of the first ``data_limit`` of each split when given), and write the report into ``out_dir``; returns the
    study and the report's path.

    Raises:
        ValueError: if there are no samples, fewer than 2 at some rate, or a split holds fewer clips than that.
    """
    if not samples:
        raise ValueError("samples must hold clips at one rate at least, got an empty dict")
    num = min(len(x) for x in samples.values())
    if num < 2:
        raise ValueError(f"evaluation needs at least 2 samples per rate, got {num}")
    real: dict[int, Tensor] = {}

    def real_at(rate: int) -> tuple[Tensor, Tensor]:
        reference, other = real_sets(data, rate, num, seed=seed, limit=data_limit)
        real[rate] = reference
        return reference, other

    study = run_audio_study(samples, real_at, training_rate=training_rate, seconds_per_sample=seconds_per_sample)
    details = {"data": str(data), "samples per rate": num, "seed": seed, **(details or {})}
    path = write_audio_report(study, out_dir, samples=samples, real=real, title=title, details=details)
    return study, path
