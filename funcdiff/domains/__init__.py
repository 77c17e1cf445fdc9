"""Domains: where functions live, how they are discretised, read and written."""

from funcdiff.domains.audio import AudioDomain
from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.domains.grid import GridDomain, box_average, nested_white_noise, resolve_count, white_noise
from funcdiff.domains.io import image_grid, read_png, read_wav, save_images, save_samples, side_by_side, write_png, write_wav
from funcdiff.domains.sound_pictures import log_power_spectrogram, power_spectrogram, rate_comparison, spectrogram_picture, waveform_picture

__all__ = [
    "AudioDomain", "Domain", "GridDomain", "SubsampleScheme", "box_average", "image_grid", "log_power_spectrogram",
    "nested_white_noise", "power_spectrogram", "read_png", "read_wav", "resolve_count", "save_images", "save_samples", "side_by_side",
    "rate_comparison", "spectrogram_picture", "waveform_picture", "white_noise", "write_png", "write_wav",
]
