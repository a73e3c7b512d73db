"""Run timing (detectron2's ``inference_on_dataset`` is the model): warm-up excluded, parts kept apart.

A runner with known costs — a slow first image (lazy initialisation), then a fixed encoder and
decoder time — shows that the warm-up images are not timed and that data, encoder, decoder and
host time add up to the timed loop. The tolerance is the loop's own bookkeeping, not the sleeps.
"""

from __future__ import annotations

import time

import pytest

from evalsuite.engine import RunConfig, run
from evalsuite.engine.timing import SessionTimer
from evalsuite.models.baselines import OracleRunner

FIRST_IMAGE_S = 0.4  # e.g. kernel selection and caches on the first call
ENCODER_S = 0.03
DECODER_S = 0.01  # per predict() call


class Costly(OracleRunner):
    """The oracle (boxes and clicks) with the costs of a real network."""

    name = "costly-oracle"

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def set_image(self, image):
        time.sleep(FIRST_IMAGE_S if self.images == 0 else ENCODER_S)
        self.images += 1
        return super().set_image(image)

    def predict(self, *args, **kwargs):
        time.sleep(DECODER_S)
        return super().predict(*args, **kwargs)


@pytest.mark.parametrize(
    ("warmup", "images", "batch", "expected"),
    [
        (5, 20, 1, 5),
        (5, 3, 1, 2),  # never every image: something is always timed
        (5, 1, 1, 0),
        (5, 20, 4, 8),  # a whole number of encoder batches (a batch is embedded in one pass)
        (0, 20, 4, 0),
    ],
)
def test_the_warm_up_is_a_whole_number_of_batches_and_never_everything(warmup, images, batch, expected):
    assert SessionTimer("cpu", warmup, images, batch).warmup == expected


def test_warm_up_is_excluded_and_the_parts_add_up_to_the_loop():
    (outcome,) = run(
        RunConfig(
            ["coco-box"], Costly(), data="sample", limit=6, warmup=2, out=None, progress=False, workers=0
        )
    )
    t = outcome.record.timing
    assert t is not None and (t.warmup_images, t.timed_images) == (2, 4)
    # the slow first image is not in the encoder figures: every timed image cost ENCODER_S
    assert ENCODER_S <= t.encoder.median_s < ENCODER_S + 0.02
    assert t.encoder.total_s < 4 * (ENCODER_S + 0.02) < FIRST_IMAGE_S
    # one predict() per instance (the box protocol batches an image's boxes into one call)
    assert t.decoder.total_s >= 4 * DECODER_S
    parts = t.data.total_s + t.encoder.total_s + t.decoder.total_s + t.host.total_s
    assert abs(parts - t.loop_s) <= 0.05 * t.loop_s, (parts, t.loop_s)
    model_s = t.encoder.total_s + t.decoder.total_s
    assert t.model_images_per_s == pytest.approx(4 / model_s, rel=1e-3)
    assert t.run_images_per_s is not None and t.run_images_per_s < t.model_images_per_s
    assert t.device_synchronized is False  # the CPU has nothing to synchronise


def test_several_protocols_share_the_encoder_and_each_keeps_its_decoder():
    outcomes = run(
        RunConfig(
            ["coco-box", "coco-1click"],
            Costly(),
            data="sample",
            limit=5,
            warmup=1,
            out=None,
            progress=False,
            workers=0,
        )
    )
    box, click = (o.record.timing for o in outcomes)
    assert box.encoder == click.encoder and box.data == click.data  # one embedding serves both
    assert box.decoder != click.decoder
    total = box.data.total_s + box.encoder.total_s
    total += box.decoder.total_s + box.host.total_s + click.decoder.total_s + click.host.total_s
    assert abs(total - box.loop_s) <= 0.05 * box.loop_s, (total, box.loop_s)
