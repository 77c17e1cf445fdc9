"""Does a notes model conditioned on instrument and pitch (``train --data notes --conditional``) play the pitch asked
for? For held-out (instrument, pitch) pairs of the notes' test split, sample one clip per pair at each guidance scale
and compare its fundamental frequency (`funcdiff.metrics.audio.pitch_and_harmonicity`) with the pitch asked for.

    python benchmarks/pitch_conditioning.py runs/notes-conditional/checkpoint --scales 1 2 3

Prints, per scale: the median absolute distance in semitones between the estimated f0 and the asked pitch, the share
of clips within half a semitone (the right note) and within half a semitone of an octave of it (the right pitch
class), and the median harmonic-to-noise ratio; the first line scores the real held-out notes the same way.
"""

import argparse
import math

import torch

from funcdiff.data import NoteDataset
from funcdiff.metrics.audio import pitch_and_harmonicity
from funcdiff.sampling import sample
from funcdiff.training import load_trained


def scores(clips: torch.Tensor, rate: int, pitches: torch.Tensor) -> tuple[float, float, float, float]:
    """Median |semitones| from the asked MIDI pitches, shares of right notes and right pitch classes, median HNR."""
    f0, hnr = pitch_and_harmonicity(clips, rate)
    semitones = 12 * torch.log2(f0.double() / 440.0) + 69 - pitches.double()
    octave = (semitones - 12 * torch.round(semitones / 12)).abs()
    return (float(semitones.abs().median()), float((semitones.abs() < 0.5).double().mean()), float((octave < 0.5).double().mean()),
            float(hnr.median()))


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--num", type=int, default=64, help="held-out (instrument, pitch) pairs")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, process, _ = load_trained(args.checkpoint)
    rate = model.reference_shape[0]
    test = NoteDataset(resolution=rate, split="test")
    rows = {tuple(int(v) for v in row): i for i, row in enumerate(test.label_rows)}  # one note per pair (the last velocity)
    chosen = sorted(rows.values())[:: max(1, math.ceil(len(rows) / args.num))][: args.num]
    labels = torch.as_tensor(test.label_rows[chosen], dtype=torch.int64)
    pitches = torch.tensor([test.notes[i][1] for i in chosen])
    real = torch.stack([test[i] for i in chosen]).float()
    print(f"{len(chosen)} held-out (instrument, pitch) pairs at {rate} Hz; median |semitones|, right note, right pitch class, median HNR dB")
    print("real notes | " + " | ".join(f"{v:.2f}" for v in scores(real, rate, pitches)))
    for scale in args.scales:
        clips = sample(model, process, rate, batch=len(chosen), steps=args.steps, cond=labels, guidance_scale=scale,
                       generator=torch.Generator().manual_seed(0))
        print(f"guidance {scale:g} | " + " | ".join(f"{v:.2f}" for v in scores(clips, rate, pitches)))


if __name__ == "__main__":
    main()
