"""Training over built components: the trainer loop, EMA, checkpoints, distributed set-up and the latent model."""

from funcdiff.training.checkpoint import Checkpoint, TrainedRun, load_trained, load_weights, read_checkpoint, save_checkpoint
from funcdiff.training.config import TrainSettings
from funcdiff.training.distributed import DistributedContext, init_distributed
from funcdiff.training.ema import make_ema, update_ema
from funcdiff.training.latent import LatentModel, LatentNormalizer, load_latent_model, sample_latents, save_latent_model, train_latent
from funcdiff.training.trainer import Trainer, TrainResult, train

__all__ = [
    "Checkpoint", "DistributedContext", "TrainedRun", "LatentModel", "LatentNormalizer", "TrainResult", "TrainSettings",
    "Trainer", "init_distributed", "load_latent_model", "load_trained", "load_weights", "make_ema",
    "read_checkpoint", "sample_latents", "save_checkpoint", "save_latent_model", "train", "train_latent",
    "update_ema",
]
