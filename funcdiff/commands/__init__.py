"""funcdiff: train diffusion models on random subsets of points, then sample them at any resolution.

One module per command, each with its options (a frozen dataclass whose fields are the flags, by tyro) and its
``run``; `funcdiff train --help` lists each flag with its description and default. Optional values take ``None``.
``--plugin MODULE`` (repeatable, on any command), the environment variable ``FUNCDIFF_PLUGINS`` and installed
``funcdiff.plugins`` entry points import a user's modules first, so their registered components can be named.
"""

import logging
import signal
import sys
from typing import Annotated, Union

import tyro

from funcdiff.commands import build_kernel, encode, evaluate, export, inpaint, interpolate, latent, reconstruct, sample, superres, train
from funcdiff.commands.common import CommonOptions
from funcdiff.plugins import load_plugins, plugin_args
from funcdiff.training.config import SettingsError, check_device, deferred_checks


COMMANDS = {
    "demo": (train.Demo, train.run),
    "train": (train.Train, train.run),
    "sample": (sample.Sample, sample.run),
    "eval": (evaluate.Eval, evaluate.run),
    "superres": (superres.Superres, superres.run),
    "inpaint": (inpaint.Inpaint, inpaint.run),
    "train-latent": (latent.TrainLatent, latent.run),
    "encode": (encode.Encode, encode.run),
    "reconstruct": (reconstruct.Reconstruct, reconstruct.run),
    "interpolate": (interpolate.Interpolate, interpolate.run),
    "build-kernel": (build_kernel.BuildKernel, build_kernel.run),
    "export": (export.Export, export.run),
}
"""Each command's name, options and ``run``."""

Command = Union[tuple(Annotated[options, tyro.conf.subcommand(name, description=options.__doc__.split("\n")[0])]
                      for name, (options, _) in COMMANDS.items())]  # type: ignore[valid-type]


FAILURES = (ValueError, TypeError, OSError, RuntimeError, FloatingPointError)
"""Errors reported as one line (with --verbose, as a traceback)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``funcdiff`` command: 0 on success, 1 on an error (one line), 128 + N after signal N."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        plugins, argv = plugin_args(argv)
        load_plugins(plugins)
    except ValueError as error:
        if "--verbose" in argv:  # the traceback too
            raise
        print(f"funcdiff: error: {error}", file=sys.stderr)
        return 1
    with deferred_checks():  # refusals of values come below, as one line in the flags' names, not in tyro's box
        command = tyro.cli(Command, args=argv, prog="funcdiff", description=__doc__)
    given = train.given_flags(argv)
    try:
        if isinstance(command, train.Demo):  # the demo's own settings beside the flags given, as it will run
            train.demo_config(command.config, given).validate()
        elif isinstance(command, train.Train):
            command.config.validate()
    except SettingsError as error:
        flags = ", ".join(f"--{name.replace('_', '-')} {value!r}" for name, value in error.invalid.items())
        print(f"funcdiff: error: invalid value: {flags} (see funcdiff {argv[0] if argv else ''} --help)", file=sys.stderr)
        raise SystemExit(2) from None
    except (TypeError, ValueError) as error:
        print(f"funcdiff: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.INFO if command.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run = next(run for options, run in COMMANDS.values() if type(command) is options)
    try:
        if isinstance(command, CommonOptions):
            check_device(command.device)
        return run(command, given) if isinstance(command, train.Train) else run(command)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except FAILURES as error:
        if command.verbose:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"funcdiff: error: {message}", file=sys.stderr)
        return 1
