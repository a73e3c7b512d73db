"""A fingerprint for a model passed from Python: what makes two objects under one name one model.

A registered model is known by its name and weights; a Python object (a callable, a Runner) is not.
Its identity is the ``version=`` its author gives, or else a hash of what it answers on a fixed probe
input — a small synthetic image with a box and a click — so that a different model under the same
name cannot resume, or stand in the row of, another's run. The probe is deterministic: a model that
answers it differently on two calls (dropout left on, unseeded randomness) is refused with the way
out (give ``version=``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..errors import EvalsuiteError, InputError, Interrupted
from ..models.base import PROMPT_BOX, PROMPT_POINTS, Runner

PROBE_HW = (96, 128)


def probe_image() -> np.ndarray:
    """96×128×3 uint8: smooth gradients with a bright rectangle (integer arithmetic only)."""
    h, w = PROBE_HW
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([255 * x // (w - 1), 255 * y // (h - 1), (3 * (x + 2 * y)) % 256], axis=-1)
    img[24:72, 40:100] = (230, 40, 40)
    return img.astype(np.uint8)


def _digest(h: hashlib._Hash, x: torch.Tensor | np.ndarray) -> None:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype == np.bool_:
        a = np.packbits(a.reshape(-1))
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    h.update(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())


def _answer(runner: Runner) -> str:
    """SHA-256 of the runner's masks and scores for a box and a click on :func:`probe_image`.

    A prompt kind the runner refuses or fails on (e.g. a callable written for boxes, given a click) is
    left out; the probe needs at least one answer.
    """
    h = hashlib.sha256()
    runner.set_image(probe_image())
    target = np.zeros((1, *PROBE_HW), dtype=bool)
    target[:, 24:72, 40:100] = True
    prompts: dict[str, dict[str, Any]] = {
        PROMPT_BOX: {"boxes": np.array([[40.0, 24.0, 100.0, 72.0]])},
        PROMPT_POINTS: {"points": np.array([[[70.0, 48.0]]]), "point_labels": np.array([[1]])},
    }
    refused: list[InputError] = []
    for kind, kwargs in prompts.items():
        if kind not in runner.prompt_kinds:
            continue
        if runner.uses_ground_truth:
            runner.set_targets(target)
        try:
            pred = runner.predict(**kwargs)
        except InputError as e:
            if "masks" in e.message or "scores" in e.message:  # its answer is bad, not the prompt kind
                raise
            refused.append(e)
            continue
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as e:  # a callable written for boxes only may fail on clicks in its own way
            refused.append(InputError(f"{type(e).__name__}: {e}"))
            continue
        h.update(kind.encode())
        _digest(h, pred.masks)
        _digest(h, pred.iou_predictions)
    if len(refused) == len([k for k in prompts if k in runner.prompt_kinds]):
        raise refused[0] if refused else InputError(f"model {runner.name!r} takes neither boxes nor clicks")
    return h.hexdigest()


def model_fingerprint(runner: Runner, version: str | None = None) -> str:
    """``version:<given>``, or ``probe:<sha256 prefix>`` of the runner's answers on :func:`probe_image`."""
    if version is not None:
        if not isinstance(version, str) or not version.strip() or len(version) > 200:
            raise InputError(f"model {runner.name!r}: version= must be a non-empty string (≤ 200 characters)")
        return f"version:{version.strip()}"
    try:
        with torch.inference_mode():
            first, again = _answer(runner), _answer(runner)
    except InputError as e:
        if "masks" in e.message or "scores" in e.message:
            raise  # a bad answer is named as such (dtype, shape), not as a probe failure
        raise InputError(
            f"model {runner.name!r} failed on evalsuite's probe input (a 96×128 image with one box and "
            f"one click), which identifies a model passed from Python: {e.message}",
            hint="pass version='...' to evaluate() to name this model's version instead",
        ) from None
    except (EvalsuiteError, Interrupted, KeyboardInterrupt):
        raise
    except Exception as e:
        raise InputError(
            f"model {runner.name!r} failed on evalsuite's probe input (a 96×128 image with one box and "
            f"one click), which identifies a model passed from Python: {type(e).__name__}: {e}",
            hint="pass version='...' to evaluate() to name this model's version instead",
        ) from None
    if first != again:
        raise InputError(
            f"model {runner.name!r} answers evalsuite's probe input differently on two calls (not "
            "deterministic), so it cannot be identified by its outputs",
            hint="pass version='...' to evaluate() to name this model's version instead",
        )
    return f"probe:{first[:16]}"
