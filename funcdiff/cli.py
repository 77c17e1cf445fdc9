"""funcdiff: train diffusion models on random subsets of pixels, then sample them at any resolution.

Commands:
  demo    train the cpu-small operator on built-in icons at 32 px for a few minutes, then sample at 32, 64, 128 px
  train   train an operator (every setting is a flag; --dry-run prints the resolved config)
  sample  sample a checkpoint at one or more resolutions
"""

import argparse
import dataclasses
import json
import logging
import sys
import time
import types
import typing
from pathlib import Path

import torch

from funcdiff.training import TrainConfig, Trainer, load_trained, sample, save_images, train
from funcdiff.training.sampling import side_by_side
from funcdiff.domains.io import write_png


def _parse_optional(kind: type):
    """An argparse type that reads 'none' as None and anything else as ``kind``."""
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _parse_points(text: str) -> int | float:
    """Points as a count ('4096') or a fraction ('0.25')."""
    return float(text) if "." in text or "e" in text.lower() else int(text)


def config_field_help() -> dict[str, str]:
    """Each `TrainConfig` field's description, read from the Attributes section of its docstring."""
    helps: dict[str, str] = {}
    name = ""
    for line in (TrainConfig.__doc__ or "").partition("Attributes:")[2].splitlines():
        head, sep, text = line.strip().partition(": ")
        if sep and head.isidentifier() and not line.startswith(" " * 12):
            name, helps[head] = head, text
        elif line.strip():
            helps[name] += " " + line.strip()
    return helps


def add_config_flags(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """One kebab-case flag per `TrainConfig` field, typed from its annotation, defaulting to ``defaults``."""
    hints, helps = typing.get_type_hints(TrainConfig), config_field_help()
    for field in dataclasses.fields(TrainConfig):
        hint, flag = hints[field.name], "--" + field.name.replace("_", "-")
        args = typing.get_args(hint)
        options = {"default": getattr(defaults, field.name), "help": helps[field.name].replace("%", "%%")}
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=args, **options)
        elif field.name == "points":
            parser.add_argument(flag, type=_parse_points, **options)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, type=args[0], nargs=len(args), **options)
        elif isinstance(hint, types.UnionType) and type(None) in args:
            options["help"] += " Pass 'none' for None."
            parser.add_argument(flag, type=_parse_optional(args[0]), **options)
        else:
            parser.add_argument(flag, type=hint, **options)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` that parsed flags describe."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


DEMO = TrainConfig(data="icons", resolution=32, preset="cpu-small", points=0.25, batch_size=16, lr=5e-4, steps=None,
                   time_budget=240.0, checkpoint_every=500, sample_count=16, sample_steps=50, out_dir="runs/demo")
"""The demo: cpu-small on icons at 32 px with 25 % of the points, four minutes of training."""


def run_train(args: argparse.Namespace) -> int:
    """The ``train`` and ``demo`` commands."""
    config = config_from_args(args)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    start = time.perf_counter()
    if args.command == "demo":  # the demo samples once, after training, at the resolutions asked for
        result = Trainer(config, resume=args.resume).run()
    else:
        result = train(config, resume=args.resume)
    print(f"trained {result.step} steps in {time.perf_counter() - start:.0f} s; final loss {result.loss:.4f}")
    print(f"checkpoint: {result.out_dir / 'checkpoint'}")
    if args.command == "demo":
        args.checkpoint, args.out_dir = result.out_dir / "checkpoint", str(result.out_dir / "samples")
        return run_sample(args)
    print(f"samples:    {result.out_dir / 'samples'}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    """The ``sample`` command (and the demo's last part)."""
    names = ("checkpoint", "resolutions", "num", "sample_steps", "sampler", "eta", "seed", "device", "chunk_points", "ema", "nested")
    settings = {k: getattr(args, k) for k in names}
    if args.dry_run:
        print(json.dumps({**settings, "checkpoint": str(args.checkpoint), "out_dir": str(args.out_dir)}, indent=2))
        return 0
    model, process, config = load_trained(args.checkpoint, ema=args.ema, device=args.device)
    channels, *reference = config["data_shape"]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample_config.json").write_text(json.dumps({**settings, "checkpoint": str(args.checkpoint)}, indent=2))
    generator = torch.Generator(device=args.device)
    grids = []
    for resolution in args.resolutions:
        generator.manual_seed(args.seed)
        start = time.perf_counter()
        images = sample(model, process, resolution, batch=args.num, channels=channels, reference_shape=tuple(reference),
                        steps=args.sample_steps, sampler=args.sampler, eta=args.eta, generator=generator, device=args.device,
                        chunk_points=args.chunk_points, nest_resolution=max(args.resolutions) if args.nested else None,
                        progress=True).cpu()
        seconds = time.perf_counter() - start
        path = save_images(images, out, f"{resolution}px")
        grids.append(images)
        print(f"{resolution:>5} px: {path}  ({seconds / args.num:.2f} s per image)")
    if len(grids) > 1:
        print(f"compare: {write_png(side_by_side(grids), out / 'resolutions.png')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``funcdiff`` argument parser."""
    parser = argparse.ArgumentParser(prog="funcdiff", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, defaults in (("demo", DEMO), ("train", TrainConfig())):
        sub = commands.add_parser(
            name, help=f"{name} (see funcdiff --help)", formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        add_config_flags(sub, defaults)
        sub.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint")
        sub.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
        if name == "demo":
            add_sample_flags(sub, resolutions=[32, 64, 128])
    sub = commands.add_parser("sample", help="sample a checkpoint at any resolution",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint directory")
    sub.add_argument("--out-dir", default="runs/samples", help="where the sample grids and images go")
    sub.add_argument("--device", default="cpu", help='"cpu", "cuda", "cuda:1", ...')
    sub.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    add_sample_flags(sub, resolutions=[32])
    return parser


def add_sample_flags(parser: argparse.ArgumentParser, *, resolutions: list[int]) -> None:
    """Flags that control sampling."""
    parser.add_argument("--resolutions", type=int, nargs="+", default=resolutions, help="sampling grid sides in pixels")
    parser.add_argument("--num", type=int, default=16, help="samples per resolution")
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="DDIM over respaced steps or ancestral DDPM")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM noise (0 = deterministic)")
    parser.add_argument("--chunk-points", type=int, default=None, help="evaluate the operator this many points at a time")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="use the EMA weights")
    parser.add_argument("--nested", action=argparse.BooleanOptionalAction, default=True,
                        help="nest the prior noise across resolutions, so a seed gives the same picture at every size")
    if not any(a.dest == "sample_steps" for a in parser._actions):
        parser.add_argument("--sample-steps", type=int, default=100, help="DDIM/DDPM steps")
    if not any(a.dest == "seed" for a in parser._actions):
        parser.add_argument("--seed", type=int, default=0, help="seeds the prior noise")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``funcdiff`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers = {"demo": run_train, "train": run_train, "sample": run_sample}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
