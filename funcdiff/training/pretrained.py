"""Pretrained models in the package: names that `load_trained` (and every ``--checkpoint``) takes beside paths.

Each lives in ``funcdiff/pretrained/<name>/`` as a weights-only checkpoint (``config.json`` and the EMA weights in
``model.safetensors``, half precision where the samples stay within one grey level) with a model card ``card.md``;
``funcdiff/pretrained/manifest.json`` lists the SHA-256 of both files, checked at every load. Nothing is downloaded.
"""

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from funcdiff.sampling import sample
from funcdiff.training.checkpoint import CHECKSUM, CONFIG, MODEL, CheckpointError, file_sha256, load_trained, save_checkpoint

PACKAGED = Path(__file__).resolve().parent.parent / "pretrained"
"""Where the packaged models live (inside the installed package)."""
MANIFEST = "manifest.json"
GREY_LEVEL = 2 / 255
"""One grey level of an 8-bit picture of data in ``[-1, 1]``."""
Precision = Literal["auto", "float16", "float32"]


def manifest(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The packaged models by name (in ``root``, default `PACKAGED`): a description and the SHA-256 of each file
    (empty when none are installed)."""
    file = (PACKAGED if root is None else root) / MANIFEST
    if not file.is_file():
        return {}
    try:
        entries = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{file} is corrupt ({error}); reinstall funcdiff") from error
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get("files"), dict) for e in entries.values()):
        raise CheckpointError(f"{file} is corrupt: it must map each name to its files' checksums; reinstall funcdiff")
    return entries


def packaged_names(root: Path | None = None) -> list[str]:
    """The names of the packaged models, sorted."""
    return sorted(manifest(root))


def _is_bare_name(text: str) -> bool:
    """Whether ``text`` is a bare name (no separator, no leading "." or "~"), which may name a packaged model."""
    return bool(text) and "/" not in text and "\\" not in text and not text.startswith((".", "~"))


def resolve_checkpoint(name_or_path: str | Path, *, root: Path | None = None) -> Path:
    """The checkpoint directory of a path, or of a packaged model's name (in ``root``, default `PACKAGED`) after
    checking its files' SHA-256.

    Raises:
        CheckpointError: for a bare name that is neither a directory here nor a packaged model (listing the packaged
            ones), one that is both (write ``./NAME`` for the directory), or a packaged file whose checksum differs.
    """
    text = str(name_or_path)
    entries = manifest(root) if _is_bare_name(text) else {}
    if text not in entries:
        if _is_bare_name(text) and not Path(text).exists():
            known = ", ".join(sorted(entries)) or "none are installed"
            raise CheckpointError(f"{text!r} is neither a checkpoint directory nor a packaged model (packaged: {known})")
        return Path(name_or_path)
    if Path(text).exists():
        raise CheckpointError(f"{text!r} is both a packaged model and a directory here: write ./{text} for the directory")
    folder = (PACKAGED if root is None else root) / text
    for name, digest in entries[text]["files"].items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"the packaged model {text!r} is incomplete: {file} is missing; reinstall funcdiff")
        if file_sha256(file) != digest:
            raise CheckpointError(f"the packaged model {text!r} is corrupt: {file} does not match its SHA-256; reinstall funcdiff")
    return folder


@dataclass(frozen=True)
class ExportReport:
    """What `export_model` wrote: where, at which precision, and the largest difference its half-precision samples
    had from float32 ones (in grey levels; None when not measured)."""

    path: Path
    precision: str
    grey_levels: float | None


def half_precision_error(model: torch.nn.Module, process: Any, *, batch: int = 8, steps: int = 50, seed: int = 0,
                         device: str = "cpu") -> float:
    """The largest difference, in grey levels, between samples of ``model`` with float32 weights and with its weights
    rounded to float16 (computed in float32), same seeds, at its reference resolution."""
    rounded = copy.deepcopy(model).eval()
    rounded.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    draws = [sample(m, process, tuple(model.reference_shape), batch=batch, steps=steps, device=device,
                    generator=torch.Generator(device=device).manual_seed(seed)) for m in (model, rounded)]
    return float((draws[0] - draws[1]).abs().max()) / GREY_LEVEL


def export_model(checkpoint: str | Path, out: str | Path, *, precision: Precision = "auto", description: str = "",
                 package_name: str | None = None, device: str = "cpu") -> ExportReport:
    """Write a checkpoint's EMA weights as a weights-only checkpoint at ``out`` (``"auto"``: float16 if its samples
    stay within one grey level of float32's, else float32); with ``package_name``, also enter it in the manifest of
    ``out``'s parent (how the packaged models are made: ``out`` is ``funcdiff/pretrained/<name>``)."""
    run = load_trained(checkpoint, device=device)
    error = half_precision_error(run.model, run.process, device=device) if precision == "auto" else None
    chosen = precision if precision != "auto" else ("float16" if error is not None and error <= 1.0 else "float32")
    model = run.model.to("cpu", torch.float16 if chosen == "float16" else torch.float32)
    config = {k: v for k, v in run.config.items() if k not in ("files", "format_version", "funcdiff_version", CHECKSUM)}
    path = save_checkpoint(out, config={**config, "weights": "ema", "precision": chosen}, model=model)
    path.chmod(0o755)  # a model to share: readable by all, like the package it may go into
    for file in path.iterdir():
        file.chmod(0o644)
    if package_name is not None:
        entries = manifest(path.parent)
        entries[package_name] = {"description": description, "files": {n: file_sha256(path / n) for n in (CONFIG, MODEL)}}
        (path.parent / MANIFEST).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return ExportReport(path, chosen, None if error is None or not math.isfinite(error) else error)
