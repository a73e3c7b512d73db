"""A weighted example model: a tiny convolutional network that segments the box's dominant colour.

Not a good model: a real network with a real weights file, wired into evalsuite by one entry point and
one :class:`~evalsuite.models.ModelSpec` whose :class:`~evalsuite.models.WeightsFile` says where the
file is published and what its SHA-256 is — so ``evalsuite download weights colour-net`` fetches and
verifies it, ``evalsuite run --model colour-net`` loads it strictly with ``weights_only=True``, and
``--weights random`` works, all without an edit of evalsuite.

The network sees the image (RGB scaled to [0, 1]) and, as a fourth channel, the prompt box filled in;
two 3×3 convolutions and a 1×1 head give mask logits at full resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from evalsuite.models import ModelSpec, Prediction, Runner, WeightsFile
from evalsuite.models.weights import network_factory

WEIGHTS = Path(__file__).resolve().parent / "weights" / "colour_net_v1.pt"


class ColourNet(nn.Module):
    """image (3) + box mask (1) → 8 → 8 → 1 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ColourNetRunner(Runner):
    """Box prompts only; one output per prompt (predicted IoU 1: there is nothing to choose from)."""

    def __init__(self, model: ColourNet, device: torch.device) -> None:
        self.model = model
        self.device = device
        self._image: torch.Tensor | None = None

    def set_image(self, image: np.ndarray) -> None:
        self._image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)

    @torch.inference_mode()
    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        if self._image is None or boxes is None:
            raise RuntimeError("set_image() first, then box prompts")
        _, h, w = self._image.shape
        ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
        xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
        out = []
        for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float32):
            box = ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).float()[None]
            x = torch.cat([self._image, box])[None].to(self.device)
            out.append((self.model(x)[0, 0] > 0) & (box[0].to(self.device) > 0))
        masks = torch.stack(out)[:, None] if out else torch.zeros(0, 1, h, w, dtype=torch.bool)
        return Prediction(masks=masks, iou_predictions=torch.ones(len(out), 1, device=masks.device))


def _runner(model: nn.Module, device: torch.device) -> ColourNetRunner:
    assert isinstance(model, ColourNet)
    return ColourNetRunner(model, device)


COLOUR_NET = ModelSpec(
    "colour-net",
    "a tiny convolutional colour segmenter (example plugin with a published weights file)",
    network_factory("colour-net", ColourNet, _runner),
    label="Colour-Net (example)",
    weights=WeightsFile(
        "colour-net",
        "colour_net_v1.pt",
        # where a real plugin would publish its file (the tests serve the shipped copy from loopback)
        "https://github.com/evalsuite-examples/colour-plugin/releases/download/v1/colour_net_v1.pt",
        format="state_dict",
        sha256="29f89254f51157563ef31f7c8c304effe6c3a5eb90a6fffe4707b40e91012982",
        size=6_429,
        sha256_source="the file shipped in this package (evalsuite_colour_plugin/weights/)",
    ),
    prompt_kinds=frozenset({"box"}),
    parameters=sum(p.numel() for p in ColourNet().parameters()),
)
