"""An SA-1B subset in the place of EdgeSAM's "SA-1K" (its paper's SA-1B evaluation).

What EdgeSAM did (chongzhou96/EdgeSAM @ b53372c0): its validation images are one SA-1B tar,
``sa_000130.tar`` (``training/sa_val_subset.txt``), and ``training/data/sa1b_dataset.py`` (lines 45-62,
192-201) takes the first 1,000 ``*.jpg`` of the extracted folder in ``glob`` order — file-system order,
not sorted — and, per image, 64 annotations drawn *with replacement* by ``torch.randint`` seeded with
the image's index; the paper (v3 §4) says "randomly select 1,000 images ... randomly sample 64
instances". The image list is published nowhere, and glob order differs between machines, so that
subset cannot be rebuilt.

What evalsuite does instead, and says so: the first 1,000 annotation files of ``sa_000130`` in *name*
order (the same on every machine), and at most 64 annotations per image drawn *without* replacement
by numpy's generator seeded with evalsuite's image id (see :mod:`evalsuite.data.sa1b`). Its numbers are
therefore not EdgeSAM's SA-1K numbers, and no paper value is ever set beside them.

Getting it: SA-1B is behind Meta's licence page (custom terms; the TensorFlow Datasets catalogue page
``segment_anything`` says "The license is custom"), whose per-tar links expire, so evalsuite downloads
nothing: accept the terms, fetch ``sa_000130.tar`` from the links file, and extract it (JSON and JPEG
files side by side) into ``<root>/sa_000130/`` — or use EdgeSAM's layout (``images/val``,
``annotations/val``). Nothing verifies the tar, so its records are never marked official.
"""

from __future__ import annotations

from ..data.spec import DatasetSpec, Layout

SA1B_1K = DatasetSpec(
    name="sa1b-1k",
    title="SA-1B 1k (sa_000130, first 1,000 by name)",
    format="sa-1b",
    summary="1,000 SA-1B images (the first by name of sa_000130, EdgeSAM's validation tar), ≤ 64 masks each",
    layouts=(Layout("sa_000130", "sa_000130"), Layout("annotations/val", "images/val")),
    format_options={"first": 1_000, "instances_per_image": 64},
    obtain=(
        "accept the SA-1B terms at https://ai.meta.com/datasets/segment-anything-downloads/, download "
        "sa_000130.tar from the links file and extract it into <root>/sa_000130/"
    ),
    licence="SA-1B's custom terms, accepted on Meta's download page",
    homepage="https://ai.meta.com/datasets/segment-anything/",
    images=1_000,
    protocols=("box", "1click", "3click", "noc20"),
    default_root="datasets/sa1b",
    notes=(
        "not EdgeSAM's SA-1K: EdgeSAM's 1,000 images (glob order) and 64 annotations (drawn with "
        "replacement) cannot be rebuilt; evalsuite takes the first 1,000 by name and draws 64 without "
        "replacement (seed: image id)"
    ),
)
