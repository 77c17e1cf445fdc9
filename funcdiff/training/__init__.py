"""Training and sampling: the trainer loop, EMA, checkpoints, distributed set-up and any-resolution sampling."""

from funcdiff.training.checkpoint import Checkpoint, load_weights, read_checkpoint, save_checkpoint
from funcdiff.training.config import TrainConfig
from funcdiff.training.distributed import DistributedContext, init_distributed
from funcdiff.training.ema import make_ema, update_ema
from funcdiff.training.sampling import image_grid, nested_white_noise, sample, save_images
from funcdiff.training.trainer import Trainer, TrainResult, build_process, load_trained, train

__all__ = [
    "Checkpoint", "DistributedContext", "TrainConfig", "TrainResult", "Trainer", "build_process", "image_grid",
    "init_distributed", "load_trained", "load_weights", "make_ema", "nested_white_noise", "read_checkpoint", "sample",
    "save_checkpoint", "save_images", "train", "update_ema",
]
