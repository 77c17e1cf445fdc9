"""The ``build-kernel`` command: compile the native sparse-convolution kernel ahead of its first use."""

import sys
from dataclasses import dataclass

from funcdiff.commands.common import CommonOptions
from funcdiff.operators.kernels import native


@dataclass(frozen=True, kw_only=True)
class BuildKernel(CommonOptions):
    """Compile the native sparse-convolution kernel now (once per environment) instead of on first use.

    Attributes:
        force: compile again even if this environment's kernel exists.
        timeout: give up after this many seconds (waiting for another process's build included).
    """

    force: bool = False
    timeout: float = 600.0


def run(command: BuildKernel) -> int:
    """The ``build-kernel`` command."""
    try:
        result = native.build(force=command.force, timeout=command.timeout)
    except native.NativeBuildError as error:
        print(f"native kernel not built: {error}", file=sys.stderr)
        return 1
    print(f"built: {result.path} ({result.seconds:.0f} s)" if result.built else f"already built: {result.path}")
    return 0
