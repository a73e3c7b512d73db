"""Feeding the model: images and ground-truth masks decoded ahead, beside the model.

Decoding a JPEG and a few dozen polygons, and resizing the image for the encoder, costs as
much as a small encoder's forward pass, so it runs ahead of the loop (the runner's
:meth:`~evalsuite.models.Runner.image_transform`, e.g. SAM's resize, runs there too; EfficientSAM's
stretch runs on the device). How, by the machine (:func:`decode_plan`):

* **decode worker processes** (a ``torch.utils.data.DataLoader``) where there are cores to spare. A
  worker writes an image's masks, and the image when it is an array, into one shared-memory buffer,
  so the main process receives a handle, not the pickled bytes; on CUDA the results come in pinned
  memory, so copies to the device do not block;
* **a decode thread** of the main process on a machine of 2 cores or fewer: nothing is handed over,
  and PIL's JPEG decoder and OpenCV's transpose release the GIL, so decoding overlaps with the loop.
  Measured on a 2-core machine (benchmarks/README.md): a process worker costs the main process more
  in hand-over than it saves there, and is slower than decoding in the loop itself;
* **in the loop** (``workers=0``, asked for explicitly).

Errors from bad files travel back as values and are raised in the main process with
their own message (a DataLoader would wrap them in a traceback).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.gt import DecodedMasks, MaskCache
from ..data.images import load_rgb
from ..data.readers import DatasetReader
from ..data.types import Sample
from ..errors import EvalsuiteError

T = TypeVar("T")


def default_image_batch(device: str) -> int:
    """Images per encoder pass: 8 on CUDA (PERFORMANCE.md measured the SAM encoders at batch 8), 1 elsewhere
    (a CPU gains nothing from batching and would hold B embeddings)."""
    return 8 if str(device).startswith("cuda") else 1


@dataclass(frozen=True)
class DecodePlan:
    """Where images are decoded: ``workers`` processes, or a thread of this process, or in the loop."""

    workers: int
    thread: bool = False


def decode_plan(workers: int | None = None, cores: int | None = None) -> DecodePlan:
    """The user's ``workers`` (0: in the loop), or by core count: a decode thread on 2 cores or fewer,
    else ``min(8, cores - 1)`` worker processes."""
    if workers is not None:
        return DecodePlan(max(0, workers))
    n = cores or os.cpu_count() or 1
    return DecodePlan(0, thread=True) if n <= 2 else DecodePlan(min(8, n - 1))


def default_workers() -> int:
    """Decode worker processes the suite starts on this machine by default (0: a thread, see above)."""
    return decode_plan().workers


class _Handover:
    """What a decode worker sends: one shared-memory buffer holding the image (when it is an array) and the
    masks, plus the few small things beside them. One buffer, because each one costs the receiving
    process a file-descriptor hand-over."""

    def __init__(self, image: Any, image_shape: tuple[int, ...] | None, buffer: torch.Tensor) -> None:
        self.image = image  # None: the image is in the buffer
        self.image_shape = image_shape
        self.buffer = buffer
        self.stack_shape: tuple[int, int, int] = (0, 0, 0)
        self.rows: dict[int, int] = {}
        self.errors: dict = {}

    def pin_memory(self) -> _Handover:
        """On CUDA (the DataLoader's pin-memory thread): the buffer, and a transform result that can be."""
        if self.image is not None and hasattr(self.image, "pin_memory"):
            self.image = self.image.pin_memory()
        if self.buffer.numel():
            self.buffer = self.buffer.pin_memory()
        return self

    def unpack(self) -> tuple[Any, DecodedMasks]:
        data = self.buffer.numpy()
        start = 0
        image = self.image
        if self.image_shape is not None:
            start = int(np.prod(self.image_shape))
            image = data[:start].reshape(self.image_shape)
        k, h, w = self.stack_shape
        stack = data[start : start + k * h * w].view(bool).reshape(k, h, w)
        return image, DecodedMasks(stack, self.rows, self.errors)


class _Images(Dataset):
    def __init__(
        self,
        reader: DatasetReader,
        image_ids: list[int],
        transform: Callable[[np.ndarray], Any] | None,
        handover: bool = False,
    ) -> None:
        self.reader = reader
        self.image_ids = image_ids
        self.transform = transform
        self.handover = handover  # in a decode worker: pack the results into shared memory

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int):
        sample = self.reader.sample(self.image_ids[i])
        try:
            image = load_rgb(sample.path, (sample.height, sample.width), sample.image_id)
            if self.transform is not None:
                image = self.transform(image)
        except EvalsuiteError as e:
            return sample, e, None
        if not self.handover:
            return sample, image, MaskCache(sample).decode_stacked()
        return sample, self._pack(sample, image), None

    @staticmethod
    def _pack(sample: Sample, image: Any) -> _Handover:
        in_buffer = isinstance(image, np.ndarray) and image.dtype == np.uint8
        head = image.size if in_buffer else 0
        out: _Handover | None = None

        def allocate(count: int, height: int, width: int) -> np.ndarray:
            nonlocal out
            buffer = torch.empty(head + count * height * width, dtype=torch.uint8)
            if buffer.numel():
                buffer.share_memory_()
            data = buffer.numpy()
            out = _Handover(None if in_buffer else image, image.shape if in_buffer else None, buffer)
            out.stack_shape = (count, height, width)
            if in_buffer:
                data[:head] = image.reshape(-1)
            return data[head:].view(bool).reshape(count, height, width)

        decoded = MaskCache(sample).decode_stacked(allocate)
        assert out is not None
        k, h, w = decoded.stack.shape  # rows of failed decodes dropped
        out.stack_shape = (k, h, w)
        out.rows, out.errors = decoded.rows, decoded.errors
        return out


def _first(batch: list):
    return batch[0]


class _DecodeThread:
    """Decodes ahead in one thread of this process (``ahead`` items queued); an error is raised in the
    consumer, and the thread stops when the consumer does."""

    def __init__(self, data: _Images, ahead: int = 3) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(data,), daemon=True, name="evalsuite-decode")
        self._thread.start()

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return True
        return False

    def _work(self, data: _Images) -> None:
        try:
            for i in range(len(data)):
                if not self._put((True, data[i])):
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            self._put((False, e))
            return
        self._put((True, None))

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                ok, item = self._queue.get()
                if not ok:
                    raise item
                if item is None:
                    return
                yield item
        finally:
            self._stop.set()


def iter_images(
    reader: DatasetReader,
    image_ids: list[int],
    workers: int = 0,
    transform: Callable[[np.ndarray], Any] | None = None,
    pin_memory: bool = False,
    thread: bool = False,
) -> Generator[tuple[Sample, Any, MaskCache], None, None]:
    """(sample, image, mask cache) for each id, in order, decoded by ``workers`` processes, or by a thread
    (``thread``, with no workers), or in the loop.

    The image is the H×W×3 uint8 RGB array, or what ``transform`` (picklable; it runs in the
    workers) makes of it. An image that cannot be read comes with its error in place of the
    pixels: the caller raises it, or skips and counts the image with ``--skip-bad``. The ground
    truth is decoded with the image, C order, as one K×H×W stack.
    """
    data = _Images(reader, image_ids, transform, handover=workers > 0)
    items: Iterator[Any]
    if workers > 0:
        items = iter(
            DataLoader(  # yields what _first returns: one item per step
                data,
                batch_size=1,
                num_workers=workers,
                collate_fn=_first,
                prefetch_factor=2,
                pin_memory=pin_memory,
            )
        )
    elif thread:
        items = iter(_DecodeThread(data))
    else:
        items = (data[i] for i in range(len(data)))
    try:
        for sample, image, masks in items:
            if isinstance(image, _Handover):
                image, masks = image.unpack()
            yield sample, image, MaskCache(sample, masks)
    finally:  # a loop that stops early (an error, an interrupt) stops the decoding too
        close = getattr(items, "close", None)
        if close is not None:
            close()


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
