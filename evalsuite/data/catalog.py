"""The datasets evalsuite knows by name, and what makes a file *the* official one.

A dataset's name in a run record must say which annotation file was scored: only the official
file (its SHA-256 below where published, or the value recorded when ``evalsuite download``
extracted it from a verified archive) is called by the official name; any other file given with
``--ann`` or found under ``--data-root`` gets a name of its own, derived from its content
(``coco-file-<sha8>``), so a one-image file is never reported as COCO val2017.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the bundled sample's dataset names, one per family (never the official data)
SAMPLE_PREFIX = "sample-"


@dataclass(frozen=True)
class OfficialDataset:
    """A published evaluation set: its name, reader family and the annotation file's fingerprint."""

    name: str  # "coco-val2017"
    family: str  # the reader: "coco" | "lvis"
    annotation: str  # the official file name
    #: SHA-256 of the official annotation file where published; None: recorded by `evalsuite download`
    sha256: str | None
    sha256_source: str
    images: int  # images in the official file
    licence: str
    homepage: str


COCO_VAL2017 = OfficialDataset(
    "coco-val2017",
    "coco",
    "instances_val2017.json",
    # Checked by a public dataset-preparation script right after it verifies the SHA-256 of
    # annotations_trainval2017.zip (113a836d…, the archive evalsuite pins in fetch/datasets.py).
    "e8c7f7908f1d7278341fae127d0da654f102f11bd7b21d8aeefa635b8c810b6f",
    "a public COCO preparation script that checks it after verifying the archive's pinned SHA-256",
    5_000,
    "CC BY 4.0 (annotations); images under their Flickr licences",
    "https://cocodataset.org",
)
LVIS_V1_VAL = OfficialDataset(
    "lvis-v1-val",
    "lvis",
    "lvis_v1_val.json",
    None,  # no reliable published value: recorded when `evalsuite download lvis` extracts it
    "",
    19_809,
    "CC BY 4.0 (annotations); COCO images",
    "https://www.lvisdataset.org",
)
OFFICIAL: dict[str, OfficialDataset] = {d.name: d for d in (COCO_VAL2017, LVIS_V1_VAL)}
#: the official dataset of each reader family (what the shipped protocols measure)
DEFAULT_FOR_FAMILY: dict[str, OfficialDataset] = {d.family: d for d in OFFICIAL.values()}


def custom_name(family: str, sha256: str) -> str:
    """The name of an annotation file that is not the official one: its family and content prefix."""
    return f"{family}-file-{sha256[:8]}"


def is_sample(name: str) -> bool:
    return name.startswith(SAMPLE_PREFIX)
