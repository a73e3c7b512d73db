"""Feeding the model: images and ground-truth masks decoded ahead, in worker processes.

Decoding a JPEG and a few dozen polygons, and resizing the image for the encoder, costs as
much as a small encoder's forward pass, so a ``torch.utils.data.DataLoader`` does it in
worker processes while the model runs (the runner's :meth:`~evalsuite.models.Runner.image_transform`,
e.g. SAM's resize; EfficientSAM's stretch runs on the device). On CUDA, with decode workers, the
results come in pinned memory, so copies to the device do not block.
Errors from bad files travel back as values and are raised in the main process with
their own message (a DataLoader would wrap them in a traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..data.gt import MaskCache
from ..data.images import load_rgb
from ..data.readers import DatasetReader
from ..data.types import Sample
from ..errors import EvalsuiteError

T = TypeVar("T")


def default_image_batch(device: str) -> int:
    """Images per encoder pass: 8 on CUDA (PERFORMANCE.md measured the SAM encoders at batch 8), 1 elsewhere
    (a CPU gains nothing from batching and would hold B embeddings)."""
    return 8 if str(device).startswith("cuda") else 1


def default_workers() -> int:
    """Decode workers: none on a 2-core machine (the model needs the cores), else up to 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


class _Images(Dataset):
    def __init__(
        self, reader: DatasetReader, image_ids: list[int], transform: Callable[[np.ndarray], Any] | None
    ) -> None:
        self.reader = reader
        self.image_ids = image_ids
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int):
        sample = self.reader.sample(self.image_ids[i])
        try:
            image = load_rgb(sample.path, (sample.height, sample.width), sample.image_id)
            if self.transform is not None:
                image = self.transform(image)
        except EvalsuiteError as e:
            return sample, e, {}
        return sample, image, MaskCache(sample).decode_all()


def _first(batch: list):
    return batch[0]


def iter_images(
    reader: DatasetReader,
    image_ids: list[int],
    workers: int = 0,
    transform: Callable[[np.ndarray], Any] | None = None,
    pin_memory: bool = False,
) -> Iterator[tuple[Sample, Any, MaskCache]]:
    """(sample, image, mask cache) for each id, in order, decoded by ``workers`` processes.

    The image is the H×W×3 uint8 RGB array, or what ``transform`` (picklable; it runs in the
    workers) makes of it. An image that cannot be read comes with its error in place of the
    pixels: the caller raises it, or skips and counts the image with ``--skip-bad``.
    """
    data = _Images(reader, image_ids, transform)
    if workers <= 0:
        items = (data[i] for i in range(len(data)))
    else:
        items = iter(
            DataLoader(  # type: ignore[arg-type]  # yields what _first returns: one item per step
                data,
                batch_size=1,
                num_workers=workers,
                collate_fn=_first,
                prefetch_factor=2,
                pin_memory=pin_memory,
            )
        )
    for sample, image, masks in items:
        yield sample, image, MaskCache(sample, masks)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
