"""The ``export`` command: a checkpoint's EMA weights as a small weights-only checkpoint, or a packaged model."""

from dataclasses import dataclass
from pathlib import Path

from funcdiff.commands.common import CommonOptions
from funcdiff.training.pretrained import PACKAGED, Precision, export_model


@dataclass(frozen=True, kw_only=True)
class Export(CommonOptions):
    """Write a checkpoint's EMA weights alone (no optimizer state), in half precision where its samples stay within
    one grey level of float32's; any command's ``--checkpoint`` reads the result.

    Attributes:
        checkpoint: the trained checkpoint.
        out_dir: where the weights-only checkpoint goes.
        precision: "auto" (float16 if 8 samples at the reference resolution, 50 steps, stay within one grey level of
            float32's, else float32), "float16" or "float32".
        package: instead of ``out_dir``, write into this package's ``funcdiff/pretrained/NAME`` and enter it in the
            manifest (how the packaged models are made, from a source checkout).
        description: the manifest's one-line description of a packaged model.
    """

    checkpoint: Path
    out_dir: Path = Path("runs/export")
    precision: Precision = "auto"
    package: str | None = None
    description: str = ""


def run(command: Export) -> int:
    """The ``export`` command."""
    out = PACKAGED / command.package if command.package else command.out_dir
    report = export_model(command.checkpoint, out, precision=command.precision, description=command.description,
                          package_name=command.package, device=command.device)
    measured = "" if report.grey_levels is None else f"; float16 samples differ by at most {report.grey_levels:.2f} grey levels"
    size = (report.path / "model.safetensors").stat().st_size / 1e6
    print(f"exported {report.path} ({report.precision}, {size:.1f} MB{measured})")
    return 0
