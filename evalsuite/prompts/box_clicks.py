"""Box + k clicks: the box prompt and k random positive clicks in the mask, given together.

The box is made as for the box protocols (``box_source``); the clicks are those of the k-click protocol
(``click_rule=random``) for the same instance and seed, so the two are comparable click for click. A box
protocol selects it with ``--set box_click_rule=random`` (and ``box_clicks=k``, default 1: options of
their own, so a run of box and click protocols can change the click protocols' ``click_rule`` and
``clicks`` alone); the model must take boxes and points in one prompt.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from ..options import OptionSpec
from .rules import BOX_SOURCE, CLICKS, BoxRule, k_random_clicks
from .strategies import KIND_BOX, KIND_POINTS, PromptInput, PromptSet


class BoxAndClicks(BoxRule):
    """The box of each instance plus k random positive clicks in its mask (seeded as the click protocols)."""

    prompt = "box"
    rule = "random"
    selector = "box_click_rule"
    kinds = frozenset({KIND_BOX, KIND_POINTS})
    options: ClassVar[dict[str, OptionSpec]] = {
        "box_source": BOX_SOURCE,
        "box_clicks": OptionSpec(
            int,
            minimum=CLICKS.minimum,
            maximum=CLICKS.maximum,
            required=False,
            default=1,
            help="random positive clicks given with the box",
        ),
    }
    seeded = True

    def prompts_empty_masks(self) -> bool:
        return False  # random clicks need the mask's pixels

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        points, labels = k_random_clicks(inp, int(self.opts["box_clicks"]), stats)
        return PromptSet(boxes=self.boxes(inp), points=points, labels=labels)
