"""Clips at several sample rates scored against real clips there: the real/real floor beside every score, the
band-limited resampling of the training-rate samples as the baseline above the training rate, the detail gain on the
band the training rate cannot hold, and the pitch and harmonicity of samples and data."""

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.data.audio import resample
from funcdiff.evaluation.study import RealSets, detail_gain
from funcdiff.metrics.audio import ClipScores, mirror_correlation, pitch_and_harmonicity, quiet_level, score_clips


@jaxtyped(typechecker=beartype)
def band_limited(clips: Float[Tensor, "b c n"], source_rate: int, target_rate: int, *, length: int) -> Float[Tensor, "b c {length}"]:
    """Every channel of every clip resampled band-limited (`funcdiff.data.audio.resample`) to ``length`` samples at
    ``target_rate``: the baseline that adds nothing above the source's Nyquist frequency.

    Not clipped to [-1, 1]: clipping would put back the high-band content the baseline stands for the absence of.
    """
    signals = clips.detach().cpu().double().reshape(-1, clips.shape[-1]).numpy()
    out = np.stack([resample(x, source_rate, target_rate, length=length) for x in signals])
    return torch.from_numpy(out).to(clips.dtype).reshape(*clips.shape[:-1], length)


@jaxtyped(typechecker=beartype)
def semitone_distance(f0: Float[Tensor, " n"], other: Float[Tensor, " m"]) -> float:
    """The 1-Wasserstein distance between two sets of fundamental frequencies (Hz) on the semitone scale
    ``12 log2 f0``, exact for the empirical distributions: the mean shift, in semitones, that turns one set's pitch
    distribution into the other's (0 when the sets are alike, 12 when one is the other an octave up)."""
    if len(f0) == 0 or len(other) == 0 or not (f0 > 0).all() or not (other > 0).all():
        raise ValueError("semitone_distance needs two non-empty sets of positive frequencies")
    a, b = ((12 * x.double().log2()).sort().values for x in (f0, other))
    # Both quantile functions are steps; between consecutive breakpoints k/n and k/m they are both constant.
    q = torch.cat([torch.arange(len(a) + 1) / len(a), torch.arange(len(b) + 1) / len(b)]).double().unique()
    middle = (q[1:] + q[:-1]) / 2
    return float(((a[(middle * len(a)).long()] - b[(middle * len(b)).long()]).abs() * q.diff()).sum())


@dataclass(frozen=True)
class Pitch:
    """Pitch statistics of a set of clips beside another set (`pitch_and_harmonicity`).

    Attributes:
        median_f0: the median fundamental frequency in Hz.
        median_hnr: the median harmonic-to-noise ratio in dB.
        f0_distance: `semitone_distance` of the set's f0 from the other set's.
    """

    median_f0: float
    median_hnr: float
    f0_distance: float


def _pitch(f0: Tensor, hnr: Tensor, other_f0: Tensor) -> Pitch:
    """`Pitch` from per-clip f0 and HNR, against ``other_f0``."""
    return Pitch(float(f0.double().quantile(0.5)), float(hnr.double().quantile(0.5)), semitone_distance(f0, other_f0))


@dataclass(frozen=True)
class AudioRow:
    """One sample rate's scores against held-out clips there, each beside the real/real floor.

    Attributes:
        rate: the sample rate in Hz.
        samples: the samples' `ClipScores` (with the high band above half the training rate, above the training rate).
        floor: a disjoint set of training clips scored the same way (what a perfect model would get).
        pitch: the samples' pitch and harmonicity, their f0 distance measured from the held-out clips.
        data_pitch: the held-out clips' pitch and harmonicity, their f0 distance measured from the training clips (the
            floor for ``pitch.f0_distance``).
        quiet_db: the samples' noise floor, `quiet_level` (dB re full scale).
        data_quiet_db: the held-out clips' `quiet_level`.
        baseline: the training-rate samples resampled band-limited to this rate (above the training rate only).
        seconds_per_sample: the sampling time, when the samples were drawn here.
        mirror: above the training rate, `mirror_correlation` of the samples about half the training rate (images of
            the trained band score near 1, overtones or silence near 0).
    """

    rate: int
    samples: ClipScores
    floor: ClipScores
    pitch: Pitch
    data_pitch: Pitch
    quiet_db: float
    data_quiet_db: float
    baseline: ClipScores | None = None
    seconds_per_sample: float | None = None
    mirror: float | None = None

    @property
    def detail_gain(self) -> float | None:
        """`detail_gain` on the high-band spectral distance, above the training rate."""
        if self.baseline is None:
            return None
        return detail_gain(self.samples.high_band, self.baseline.high_band, self.floor.high_band)


@dataclass(frozen=True)
class AudioStudy:
    """Rows of scores, one per sample rate, and the training rate they refer to."""

    training_rate: int
    rows: tuple[AudioRow, ...]

    def row(self, rate: int) -> AudioRow:
        """The row at ``rate`` Hz."""
        for row in self.rows:
            if row.rate == rate:
                return row
        raise KeyError(f"no row at {rate} Hz; rows: {[r.rate for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary of every score, with the detail gains."""
        rows = []
        for row in self.rows:
            entry = asdict(row)  # nested dataclasses become dicts, None stays None
            entry["detail_gain"] = row.detail_gain
            rows.append(entry)
        return {"training_rate": self.training_rate, "rows": rows}


def _check_clips(samples: dict[int, Tensor]) -> None:
    """Raise ``ValueError`` unless there are samples, each entry a batch of at least 2 mono clips."""
    if not samples:
        raise ValueError("samples must hold clips at one rate at least, got an empty dict")
    for rate, x in samples.items():
        if x.ndim != 3 or x.shape[1] != 1 or len(x) < 2:
            raise ValueError(f"samples at {rate} Hz must be at least 2 mono clips (b, 1, n), got shape {tuple(x.shape)}")


def _mirror(clips: Tensor, rate: int, edge: float) -> float | None:
    """`mirror_correlation` about ``edge``, or None where the band above it is too narrow to correlate."""
    try:
        return mirror_correlation(clips, rate, edge)
    except ValueError:
        return None


def run_audio_study(
    samples: dict[int, Float[Tensor, "_b 1 _n"]],
    real: RealSets,
    *,
    training_rate: int,
    seconds_per_sample: dict[int, float] | None = None,
) -> AudioStudy:
    """Score each rate's samples against the held-out clips there (`AudioRow`); ``real(rate)`` gives ``(held-out
    clips, training clips)`` at ``rate``, disjoint sets of the same distribution (`funcdiff.evaluation.real_sets`).

    Above the training rate ``r``, the spectral distance is also taken over the band above ``r / 2`` Hz, and when the
    samples at ``r`` are given, their band-limited resampling to the rate is scored as the baseline.

    Raises:
        ValueError: if an entry is not a batch of mono clips, or its clips differ in length from the real ones.
    """
    _check_clips(samples)
    r = training_rate
    rows = []
    for rate, x in sorted(samples.items()):
        reference, other = real(rate)
        if x.shape[1:] != reference.shape[1:]:
            raise ValueError(f"samples at {rate} Hz have shape {tuple(x.shape[1:])} per clip, the real clips there "
                             f"{tuple(reference.shape[1:])}")
        score = partial(score_clips, reference=reference, sample_rate=rate, band_from=r / 2 if rate > r else None)
        (f0, hnr), (ref_f0, ref_hnr), (other_f0, _) = (pitch_and_harmonicity(s, rate) for s in (x, reference, other))
        rows.append(AudioRow(
            rate=rate,
            samples=score(x),
            floor=score(other),
            pitch=_pitch(f0, hnr, ref_f0),
            data_pitch=_pitch(ref_f0, ref_hnr, other_f0),
            quiet_db=quiet_level(x, rate),
            data_quiet_db=quiet_level(reference, rate),
            baseline=score(band_limited(samples[r], r, rate, length=x.shape[-1])) if rate > r and r in samples else None,
            seconds_per_sample=(seconds_per_sample or {}).get(rate),
            mirror=_mirror(x, rate, r / 2) if rate > r else None,
        ))
    return AudioStudy(training_rate=r, rows=tuple(rows))
