"""Model options (``ModelSpec.options``): declared once with the official default, checked, resolved."""

from __future__ import annotations

import pytest

from evalsuite.errors import InputError
from evalsuite.models.base import ModelSpec
from evalsuite.options import OptionSpec


def _spec() -> ModelSpec:
    return ModelSpec(
        "toy",
        "a toy",
        build=lambda **kw: kw,  # type: ignore[arg-type,return-value]
        options={
            "hq_token_only": OptionSpec(bool, column=False, default=False, help="HQ mask alone"),
            "masks": OptionSpec(choices=(1, 3, 4), column=False, default=3),
        },
    )


def test_defaults_fill_what_is_not_given():
    assert _spec().resolve_options({}) == {"hq_token_only": False, "masks": 3}
    assert _spec().resolve_options({"masks": 4}) == {"hq_token_only": False, "masks": 4}


def test_unknown_and_bad_values_are_one_line_errors():
    with pytest.raises(InputError, match=r"has no option colour .*its options: hq_token_only, masks"):
        _spec().resolve_options({"colour": 1})
    with pytest.raises(InputError, match="masks=2 not one of 1, 3, 4"):
        _spec().resolve_options({"masks": 2})
    with pytest.raises(InputError, match="hq_token_only must be bool"):
        _spec().resolve_options({"hq_token_only": "yes"})
