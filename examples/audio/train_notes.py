"""Train an ∞-Diff operator on recorded instrument notes at one sample rate and sample it at 2x and 4x that rate,
composing the components in Python (the command line's `funcdiff demo --data notes` does the same from flags).

    python examples/audio/train_notes.py                          # 4 kHz, eight minutes on the CPU
    python examples/audio/train_notes.py --rate 1000 --preset tiny --data-limit 8 --steps 3 --time-budget 0 --sample-steps 2

Needs FluidSynth and its General MIDI soundfont (``apt-get install -y fluidsynth fluid-soundfont-gm``); the notes are
rendered once and cached. Writes the run (checkpoint/, metrics.jsonl) into --out-dir and, per rate, WAV files,
spectrograms and waveforms under samples/, and rates.png: the same seeds' spectrograms at every rate on one
frequency axis, where what the model adds above the training band shows.
"""

import argparse
import sys
from pathlib import Path

import torch

from funcdiff import AudioDomain, GaussianMollifier, MollifiedDDPM, cosine_schedule, operator_preset
from funcdiff.data import NoteDataset
from funcdiff.domains import rate_comparison, write_png
from funcdiff.sampling import sample
from funcdiff.training import TrainSettings, Trainer


def main(argv: list[str] | None = None) -> int:
    """Train for the budget, then sample at 1x, 2x and 4x the rate from one nested noise and write what came out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=4000, help="training sample rate in Hz (must divide 32000)")
    parser.add_argument("--sigma-ms", type=float, default=0.25, help="mollifier standard deviation in milliseconds")
    parser.add_argument("--preset", default="audio-small", help="operator preset")
    parser.add_argument("--data-limit", type=int, default=None, help="train on only this many notes")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: the time budget only)")
    parser.add_argument("--time-budget", type=float, default=480.0, help="seconds of training (0: no limit)")
    parser.add_argument("--sample-count", type=int, default=8)
    parser.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs/notes")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out-dir")
    args = parser.parse_args(argv)

    data = NoteDataset(resolution=args.rate, limit=args.data_limit)
    domain = AudioDomain(duration=data.duration)
    mollifier = GaussianMollifier(args.sigma_ms / 1000 / data.duration)  # sigma in units of the clip
    process = MollifiedDDPM(domain, cosine_schedule(1000), mollifier, "x0")
    torch.manual_seed(args.seed)
    model = operator_preset(args.preset, channels=1, resolution=data.shape[1:])
    settings = TrainSettings(points=0.25, lr=5e-4, steps=args.steps, time_budget=args.time_budget or None, seed=args.seed,
                             sample_count=args.sample_count, sample_steps=args.sample_steps, out_dir=args.out_dir)
    trainer = Trainer(model, process, data, settings, overwrite=args.overwrite)
    trainer.run()

    rates = [args.rate, 2 * args.rate, 4 * args.rate]
    out, clips = Path(args.out_dir) / "samples", []
    for rate in rates:
        generator = torch.Generator().manual_seed(args.seed)
        x = sample(trainer.ema, process, rate, batch=args.sample_count, steps=args.sample_steps, generator=generator,
                   nest_resolution=rates[-1], progress=True)
        clips.append(x)
        print(f"{rate} Hz: {domain.save_samples(x, out, domain.label(tuple(x.shape[2:])))}")
    print(f"compare: {write_png(rate_comparison(clips, rates), out / 'rates.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
