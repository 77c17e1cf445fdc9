"""A small convolutional classifier trained on real labelled images, to ask which class a sample looks like."""

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn
from tqdm.auto import tqdm

from funcdiff._typing import Float, Int, Tensor


class ImageClassifier(nn.Module):
    """Two 3 x 3 convolutions with pooling, then two linear layers: about 0.3 M parameters, any square side >= 8.

    Args:
        channels: the images' channels.
        classes: the number of classes.
    """

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 256), nn.GELU(), nn.Dropout(0.25), nn.Linear(256, classes),
        )

    def forward(self, images: Float[Tensor, "n c h w"]) -> Float[Tensor, "n k"]:
        """The class logits of images in [-1, 1]."""
        return self.net(images)


@jaxtyped(typechecker=beartype)
def train_classifier(
    images: Float[Tensor, "n c h w"], labels: Int[Tensor, " n"], classes: int, *, epochs: int = 3, batch_size: int = 128,
    lr: float = 2e-3, seed: int = 0, progress: bool | None = None,
) -> ImageClassifier:
    """An `ImageClassifier` trained with Adam on ``images`` and their ``labels`` in ``[0, classes)`` (seeded; returned
    in eval mode)."""
    if len(images) != len(labels) or len(images) < 2:
        raise ValueError(f"need two or more images with one label each, got {len(images)} images and {len(labels)} labels")
    if bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(f"labels must lie in [0, {classes})")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ImageClassifier(images.shape[1], classes)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
        steps = epochs * -(-len(images) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
        bar = tqdm(total=steps, desc="training the classifier", unit="step", disable=None if progress is None else not progress)
        for _ in range(epochs):
            for batch in torch.randperm(len(images), generator=generator).split(batch_size):
                loss = nn.functional.cross_entropy(classifier(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update(1)
        bar.close()
    return classifier.eval()


@torch.no_grad()
@jaxtyped(typechecker=beartype)
def classify(classifier: nn.Module, images: Float[Tensor, "n c h w"], *, batch_size: int = 512) -> Int[Tensor, " n"]:
    """The most likely class of each image."""
    return torch.cat([classifier(chunk).argmax(-1) for chunk in images.split(batch_size)])
