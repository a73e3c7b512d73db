"""Timing done right (detectron2's ``inference_on_dataset``): warm-up excluded, device synchronised,
each part of the per-image work measured apart.

Parts: ``data`` (waiting for the decode workers' next image), ``encoder`` (the image encoder, per
image: a batch's time shared equally by its images), ``decoder`` (a protocol's prompt + mask
decoder calls) and ``host`` (the rest of a protocol's per-image work: prompts, choosing outputs,
IoU, logging). On CUDA the device is synchronised before each clock reading around model calls,
so asynchronous kernels are charged to the call that launched them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from ..record import PhaseTime, TimingPart

T = TypeVar("T")
DEFAULT_WARMUP = 5


def make_sync(device: str | torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op off CUDA)."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


class Clock:
    """``perf_counter`` after a device sync."""

    def __init__(self, device: str | torch.device) -> None:
        self.sync = make_sync(device)
        self.synchronizes = torch.device(device).type == "cuda"

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


class TimedRunner:
    """A runner whose ``predict`` calls are timed (everything else is the runner's own).

    Tasks receive this proxy, so a protocol's decoder time is exactly the time spent in its
    predict() calls, whatever the task does around them.
    """

    def __init__(self, runner: Any, clock: Clock) -> None:
        self._runner = runner
        self._clock = clock
        self.seconds = 0.0

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        start = self._clock.now()
        try:
            return self._runner.predict(*args, **kwargs)
        finally:
            self.seconds += self._clock.now() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


@dataclass
class ImageTimes:
    """The seconds one image took, by part (decoder and host per protocol)."""

    data: float = 0.0
    encoder: float = 0.0
    decoder: dict[str, float] = field(default_factory=dict)
    host: dict[str, float] = field(default_factory=dict)


class SessionTimer:
    """Collects per-image times for a session; the first ``warmup`` images are not timed.

    The warm-up is a whole number of encoder batches (a batch is embedded in one pass, so its
    images cannot be split between warm-up and timed), and never all images when there are some.
    ``loop_s`` is the wall time from the end of the warm-up to the end of the last image: the
    parts of the timed images add up to it, up to the loop's own bookkeeping.
    """

    def __init__(self, device: str | torch.device, warmup: int, images: int, batch: int = 1) -> None:
        self.clock = Clock(device)
        w = max(0, min(warmup, images - 1))
        if batch > 1 and w > 0:
            w = min(-(-w // batch) * batch, max(images - 1, 0))
        self.warmup = w
        self.images: list[ImageTimes] = []
        self._ended = 0
        self.session_start = time.perf_counter()
        self._loop_start: float | None = self.session_start if self.warmup == 0 else None
        self.loop_s = 0.0
        self.session_s: float | None = None

    def timed_pull(self, items: Iterator[T]) -> Iterator[tuple[T, float]]:
        """Each item of ``items`` with the seconds spent waiting for it."""
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            yield item, time.perf_counter() - start

    def image(self, data_s: float) -> ImageTimes:
        """Start the record of the next image (in loop order), with its data wait."""
        t = ImageTimes(data=data_s)
        self.images.append(t)
        return t

    def end_image(self) -> None:
        """An image is done (scored for every protocol, or skipped)."""
        self._ended += 1
        now = time.perf_counter()
        if self._ended == self.warmup:
            self._loop_start = now
        elif self._loop_start is not None and self._ended > self.warmup:
            self.loop_s = now - self._loop_start

    def finish(self) -> None:
        """The session's loop is over (its wall time is what the run's throughput is measured by)."""
        self.session_s = time.perf_counter() - self.session_start

    def part(self, protocol: str) -> TimingPart | None:
        """The timing of one protocol's record (None when no image was timed)."""
        timed = self.images[self.warmup :]
        if not timed:
            return None

        def phase(values: list[float]) -> PhaseTime:
            return PhaseTime(median_s=round(statistics.median(values), 6), total_s=round(sum(values), 6))

        data = phase([t.data for t in timed])
        encoder = phase([t.encoder for t in timed])
        decoder = phase([t.decoder.get(protocol, 0.0) for t in timed])
        host = phase([t.host.get(protocol, 0.0) for t in timed])
        model_s = encoder.total_s + decoder.total_s
        session_s = self.session_s if self.session_s is not None else time.perf_counter() - self.session_start
        return TimingPart(
            warmup_images=self.warmup,
            timed_images=len(timed),
            data=data,
            encoder=encoder,
            decoder=decoder,
            host=host,
            loop_s=round(self.loop_s, 6),
            model_images_per_s=round(len(timed) / model_s, 4) if model_s > 0 else None,
            run_images_per_s=round(len(self.images) / session_s, 4) if session_s > 0 else None,
            peak_device_memory_bytes=torch.cuda.max_memory_allocated() if self.clock.synchronizes else None,
            device_synchronized=self.clock.synchronizes,
            **_spread([t.encoder + t.decoder.get(protocol, 0.0) for t in timed]),
        )


def _spread(model_s: list[float]) -> dict[str, float]:
    """10th / 90th percentile of the per-image model seconds (the speed plot's error bars)."""
    p10, p90 = np.quantile(np.asarray(model_s, dtype=np.float64), [0.1, 0.9])
    return {"model_s_p10": round(float(p10), 6), "model_s_p90": round(float(p90), 6)}
