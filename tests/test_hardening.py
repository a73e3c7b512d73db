"""Unit checks behind the bad-input catalogue: RLE string decoding, seed material for negative ids,
value checks that never raise, the run-folder lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from evalsuite.data import values
from evalsuite.data.masks import (
    compressed_counts,
    compressed_rle_problems,
    rle_problem,
    segmentation_problem,
)
from evalsuite.data.values import as_float, finite_sum, is_finite_number, is_int64, short
from evalsuite.engine.runfolder import LOCK_FILE, RunFolder
from evalsuite.errors import InputError, ResumeConflictError
from evalsuite.prompts.clicks import NEGATIVE_MARKER, random_clicks, seed_material

# --- compressed RLE ----------------------------------------------------------------------------


@st.composite
def _masks(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["random", "block", "empty", "full"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        return (rng.random((h, w)) < rng.random()).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if kind == "block":
        mask[rng.integers(0, h) :, rng.integers(0, w) :] = 1
    if kind == "full":
        mask[:] = 1
    return mask


@settings(max_examples=300, deadline=None)
@given(_masks())
def test_compressed_counts_decode_what_pycocotools_encodes(mask):
    h, w = mask.shape
    counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
    runs = compressed_counts(counts)
    assert isinstance(runs, list) and sum(runs) == h * w
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    assert np.array_equal(flat.reshape(w, h).T, mask)  # column-major runs, starting with zeros
    assert segmentation_problem({"counts": counts, "size": [h, w]}, h, w) is None
    assert rle_problem({"counts": counts, "size": [h, w]}) is None
    # one pixel short or long, or cut anywhere: refused, never handed to the decoder
    for other in ([h, w + 1], [h + 1, w]):
        assert segmentation_problem({"counts": counts, "size": other}, *other) is not None
    for cut in range(len(counts)):
        assert segmentation_problem({"counts": counts[:cut], "size": [h, w]}, h, w) is not None


@st.composite
def _damaged_counts(draw):
    """A real encoding, then characters cut, inserted or altered (or not), with its size or another."""
    mask = draw(_masks())
    counts = list(mask_utils.encode(np.asfortranarray(mask))["counts"].decode())
    for _ in range(draw(st.integers(0, 3))):
        p = draw(st.integers(0, len(counts)))
        op = draw(st.sampled_from(["cut", "insert", "drop", "replace"]))
        ch = draw(st.sampled_from("0O_`op~!P5"))
        if op == "cut":
            counts = counts[:p]
        elif op == "insert":
            counts.insert(p, ch)
        elif counts and op == "drop":
            counts.pop(min(p, len(counts) - 1))
        elif counts:
            counts[min(p, len(counts) - 1)] = ch
    h, w = mask.shape
    size = draw(st.sampled_from([[h, w], [h, w + 1], [h + 1, w]]))
    return {"size": size, "counts": "".join(counts)}


@settings(max_examples=300, deadline=None)
@given(st.lists(_damaged_counts(), max_size=8))
def test_bulk_rle_check_equals_the_single_one(rles):
    """The vectorised check of a whole log refuses exactly what the one-string check refuses."""
    expected = {i: p for i, rle in enumerate(rles) if (p := rle_problem(rle))}
    assert compressed_rle_problems(rles) == expected


def test_compressed_counts_problems():
    assert "only '0' to 'o'" in compressed_counts("0p")  # type: ignore[operator]
    assert "end inside a run" in compressed_counts("0P")  # type: ignore[operator]
    assert "decodes to -1" in compressed_counts("O")  # type: ignore[operator]
    assert compressed_counts(b"02") == [0, 2]
    assert "longer than 7 characters" in compressed_counts("PPPPPPP0")  # type: ignore[operator]
    assert compressed_counts("PPPPPP0") == [0]  # 7 characters: the most a run takes


def test_polygon_coordinates_are_bounded_by_the_image():
    ok = [[-10.0, -5.0, 19.0, 0.0, 19.0, 9.0]]
    assert segmentation_problem(ok, 10, 20) is None  # a little outside: fine
    assert segmentation_problem([[-20.0, -10.0, 40.0, 0.0, 40.0, 20.0]], 10, 20) is None  # the limits
    assert "x = 40.5" in segmentation_problem([[0.0, 0.0, 40.5, 0.0, 1.0, 1.0]], 10, 20)  # type: ignore[operator]
    assert "y = -10.5" in segmentation_problem([[0.0, -10.5, 4.0, 0.0, 1.0, 1.0]], 10, 20)  # type: ignore[operator]
    assert segmentation_problem({"counts": [1], "size": 5}, 1, 1) == "RLE size 5 is not [height, width]"


# --- values ------------------------------------------------------------------------------------


def test_value_checks_never_raise():
    huge = 10**400
    assert as_float(huge) is None and not is_finite_number(huge) and as_float(10**300) == 1e300
    assert not is_finite_number(float("nan")) and not is_finite_number(True)
    assert not finite_sum(1.7e308, 1.7e308) and finite_sum(1.0, 2.0)
    assert is_int64(-(2**63)) and not is_int64(2**63) and not is_int64(1.0)
    assert short(10**5000) == "<an integer of about 5001 digits>"
    assert len(short("x" * 1000)) == 60


# --- seeds of negative ids ---------------------------------------------------------------------


def reference_random_clicks(mask, k, seed, image_id, ann_id):
    """The literal definition of the clicks (unchanged since the first release)."""
    pixels = np.flatnonzero(mask)
    rng = np.random.default_rng([seed, image_id, ann_id])
    chosen: list[int] = []
    while len(chosen) < k:
        i = int(rng.integers(len(pixels)))
        if i not in chosen:
            chosen.append(i)
    rows, cols = np.divmod(pixels[chosen], mask.shape[1])
    return np.stack([cols, rows], axis=1).astype(np.float64).reshape(k, 2)


_non_negative = st.one_of(st.integers(0, 2**40), st.integers(2**40, 2**80))


@settings(max_examples=200, deadline=None)
@given(_non_negative, _non_negative, _non_negative, st.integers(0, 5))
def test_non_negative_seeds_are_unchanged(seed, image_id, ann_id, k):
    """Recorded clicks and the gates depend on them: the material is the triple itself."""
    assert seed_material(seed, image_id, ann_id) == [seed, image_id, ann_id]
    mask = np.ones((7, 9), dtype=bool)
    np.testing.assert_array_equal(
        random_clicks(mask, k, seed, image_id, ann_id)[0],
        reference_random_clicks(mask, k, seed, image_id, ann_id),
    )


def _uint32_words(material: list[int]) -> list[int]:
    from numpy.random.bit_generator import _coerce_to_uint32_array  # what SeedSequence hashes

    return [int(w) for w in _coerce_to_uint32_array(material)]


def _splits_into_three_non_negative_ints(words: list[int]) -> bool:
    """Whether some non-negative triple has exactly these seed words (each integer: its words, the
    last one non-zero, or the single word 0)."""

    def ok(group: list[int]) -> bool:
        return group == [0] or (len(group) > 0 and group[-1] != 0)

    n = len(words)
    return any(
        ok(words[:i]) and ok(words[i:j]) and ok(words[j:]) for i in range(1, n) for j in range(i + 1, n)
    )


_any_int = st.one_of(st.integers(-(2**70), 2**70), st.integers(-5, 5))


@settings(max_examples=300, deadline=None)
@given(_any_int, _any_int, _any_int)
def test_negative_seed_material_never_equals_a_non_negative_triples(seed, image_id, ann_id):
    material = seed_material(seed, image_id, ann_id)
    if min(seed, image_id, ann_id) >= 0:
        assert material == [seed, image_id, ann_id]
        return
    assert material[0] == NEGATIVE_MARKER and material[-3:] == [0, 0, 0]
    assert values.seed_material(seed, image_id) != [seed, image_id] or min(seed, image_id) >= 0
    assert all(0 <= w < 2**32 for w in material)
    assert not _splits_into_three_non_negative_ints(_uint32_words(material))
    assert _splits_into_three_non_negative_ints(_uint32_words([abs(seed), abs(image_id), abs(ann_id)]))


@settings(max_examples=200, deadline=None)
@given(_any_int, _any_int, _any_int, _any_int, _any_int, _any_int)
def test_seed_material_is_injective(a, b, c, d, e, f):
    if (a, b, c) != (d, e, f):
        assert _uint32_words(seed_material(a, b, c)) != _uint32_words(seed_material(d, e, f))


def test_negative_ids_and_seeds_give_clicks_deterministically():
    mask = np.ones((50, 50), dtype=bool)
    a, _ = random_clicks(mask, 5, -1, -139, -42)
    b, _ = random_clicks(mask, 5, np.int64(-1), -139, -42)
    np.testing.assert_array_equal(a, b)
    others = [random_clicks(mask, 5, *args)[0] for args in [(1, 139, 42), (-1, 139, 42), (0, -139, 42)]]
    assert all(not np.array_equal(a, o) for o in others)
    full, _ = random_clicks(mask, 8, 0, -3, 7)  # still nested
    np.testing.assert_array_equal(random_clicks(mask, 3, 0, -3, 7)[0], full[:3])


# --- the run-folder lock -----------------------------------------------------------------------

_HOLD = (
    "import sys, time; from pathlib import Path; from evalsuite.engine.runfolder import RunFolder\n"
    "f = RunFolder(Path(sys.argv[1]), {'a': 1}, 'instances.jsonl')\n"
    "print('held', flush=True); time.sleep(120)"
)


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_refuses_a_live_holder_and_takes_over_a_killed_one(tmp_path):
    proc = _holder(tmp_path)
    try:
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["pid"] == proc.pid and owner["host"]
        with pytest.raises(ResumeConflictError, match=f"pid {proc.pid} on host"):
            RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
        # other torchrun processes only check the folder: they never take the lock
        RunFolder(tmp_path, {"a": 1}, "instances.jsonl", rank=1, check_only=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    folder = RunFolder(tmp_path, {"a": 1}, "instances.jsonl")  # stale: taken over
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    folder.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_in_one_process_is_taken_over_by_its_next_run(tmp_path):
    first = RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
    second = RunFolder(tmp_path, {"a": 1}, "instances.jsonl")  # the first stopped without releasing
    assert first.lock is not None and second.lock is not None
    first.release()  # a no-op now: the second holds the folder
    assert (tmp_path / LOCK_FILE).is_file()
    del second
    assert not (tmp_path / LOCK_FILE).exists(), "released when the folder object goes"


def test_lock_of_another_host_is_refused_with_a_way_out(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "today"}))
    with pytest.raises(ResumeConflictError) as e:
        RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
    assert "host elsewhere" in str(e.value) and f"delete {tmp_path / LOCK_FILE}" in str(e.value)


def test_lock_released_when_setting_up_fails(tmp_path):
    RunFolder(tmp_path, {"a": 1}, "instances.jsonl").release()
    with pytest.raises(ResumeConflictError, match="another identity"):
        RunFolder(tmp_path, {"a": 2}, "instances.jsonl")
    assert not (tmp_path / LOCK_FILE).exists()
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(InputError, match=r"config\.json: not valid JSON"):
        RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
    assert not (tmp_path / LOCK_FILE).exists()
