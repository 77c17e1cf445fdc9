"""Images per second of the image-folder loader at the training resolution: the first epoch (decoding every file,
or building the on-disk cache) and later epochs (reading the cache), with and without DataLoader workers.

    python benchmarks/folder_loader.py [--count 512] [--size 512] [--resolution 256] [--batch-size 32] [--workers 0 2]

Writes ``--count`` synthetic ``--size`` px photos (smooth random colour fields with grain; half JPEG quality 90,
half PNG) to a temporary folder, then times `infinite_loader` over `ImageFolder` at ``--resolution`` for one pass
of the data per case, every case in one run. The issue's target: at least 400 images/s at 256 px on 2 cores after
the first epoch.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from funcdiff.data import ImageFolder, infinite_loader


def write_images(folder: Path, count: int, size: int) -> None:
    """``count`` photo-like images of ``size`` px: upsampled random colour fields plus grain, half JPEG, half PNG."""
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        if i % 2:
            image.save(folder / f"{i:05d}.png")
        else:
            image.save(folder / f"{i:05d}.jpg", quality=90)


def epochs_rate(dataset: ImageFolder, batch_size: int, workers: int, epochs: int, *, warm: bool) -> float:
    """Images per second over ``epochs`` passes of ``dataset`` (after one batch when ``warm``, so without start-up)."""
    batches = -(-len(dataset) * epochs // batch_size)
    loader = infinite_loader(dataset, batch_size, seed=0, num_workers=workers)
    if warm:
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    rate = batches * batch_size / (time.perf_counter() - start)
    del loader
    return rate


def main() -> None:
    """Write the images, then time decoding, building the cache and reading it, with each number of workers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=512, help="images in the folder")
    parser.add_argument("--size", type=int, default=512, help="side of the source images in pixels")
    parser.add_argument("--resolution", type=int, default=256, help="training resolution")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--epochs", type=int, default=3, help="cached epochs timed per case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        start = time.perf_counter()
        write_images(folder, args.count, args.size)
        print(f"{args.count} images of {args.size} px (half JPEG q90, half PNG) written in {time.perf_counter() - start:.1f} s; "
              f"{args.resolution} px, batch {args.batch_size}, {args.threads} main-process thread(s)")
        options = {"resolution": args.resolution, "test_fraction": 0.0, "progress": False}
        plain = ImageFolder(folder, **options, cache=False)
        rows = []
        for workers in args.workers:
            decoded = epochs_rate(plain, args.batch_size, workers, 1, warm=False)
            start = time.perf_counter()
            cached = ImageFolder(folder, **options, cache_dir=Path(tmp) / f"cache-{workers}", workers=workers)
            built = args.count / (time.perf_counter() - start)
            warm = epochs_rate(cached, args.batch_size, workers, args.epochs, warm=True)
            rows.append((workers, decoded, built, warm))
        print("| workers | first epoch, decoding (no cache) | first epoch, building the cache | later epochs, cached | cached / decoding |")
        print("|---|---|---|---|---|")
        for workers, decoded, built, warm in rows:
            print(f"| {workers} | {decoded:.0f} images/s | {built:.0f} images/s | **{warm:.0f} images/s** | {warm / decoded:.1f}x |")
        print(f"cache size: {cached.cache_path.stat().st_size / 1e6:.1f} MB ({cached.cache_path.name}, {np.load(cached.cache_path, mmap_mode='r').dtype})")


if __name__ == "__main__":
    main()
