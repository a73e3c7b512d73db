"""The interactive-segmentation benchmarks as RITM distributes them: GrabCut, Berkeley, DAVIS.

Archives and layouts (SamsungLabs/ritm_interactive_segmentation @ b9b44603, README 144-172 and
``isegm/data/datasets/{grabcut,berkeley,davis}.py``): the f-BRS release zips (saic-vul), no checksums
published (recorded at the first download), no dataset licence stated (RITM's code is MIT). The
inner folder of each zip (``GrabCut/``, ``Berkeley/``, ``DAVIS/``) matches RITM's config paths
(``./datasets/<Name>``) but is not documented; evalsuite's default root for them is ``./datasets``.

Masks, as RITM reads them:

* GrabCut: images ``data_GT/``, masks ``boundary_GT/`` (paired by stem); channel 0, > 128 object,
  exactly 128 "ignore" (excluded from IoU and clicks in RITM; background in evalsuite, which has no
  ignore region — the only place these numbers can differ from RITM's);
* Berkeley: the GrabCut reader on ``images/`` and ``masks/`` (RITM: "96 images with 100 instances";
  its reader, and evalsuite, take one mask per image);
* DAVIS: images ``img/``, masks ``gt/``; object = any channel > 0, one object per image (an
  instance-id map with every id merged).

The FocusCut-style packaging (``img/`` + ``gt/`` for GrabCut) is accepted as a second layout.
RITM's own protocol is NoC@85/90 with 20 clicks of the clicker evalsuite calls ``click_rule=sam``.
"""

from __future__ import annotations

from ..data.spec import DataFile, DatasetSpec, Layout

_RELEASE = "https://github.com/saic-vul/fbrs_interactive_segmentation/releases/download/v1.0"
_LICENCE = "not stated by RITM / f-BRS (their code is MIT); the original datasets' terms apply"
_PROTOCOLS = ("box", "1click", "3click", "noc20")


def _zip(name: str) -> DataFile:
    return DataFile(
        f"ritm-{name.lower()}", f"{name}.zip", f"{_RELEASE}/{name}.zip", extracts=((f"{name}/", name),)
    )


GRABCUT = DatasetSpec(
    name="grabcut",
    title="GrabCut",
    format="mask-png",
    summary="50 images, one object each (RITM's copy)",
    layouts=(
        Layout("GrabCut/boundary_GT", "GrabCut/data_GT"),
        Layout("boundary_GT", "data_GT"),
        Layout("GrabCut/gt", "GrabCut/img"),
    ),
    format_options={"threshold": 128, "channel": "first"},
    files=(_zip("GrabCut"),),
    licence=_LICENCE,
    homepage="https://github.com/SamsungLabs/ritm_interactive_segmentation",
    images=50,
    protocols=_PROTOCOLS,
    metrics=("mIoU",),
    default_root="datasets",
    notes="RITM's ignore band (mask value 128) counts as background in evalsuite",
)
BERKELEY = DatasetSpec(
    name="berkeley",
    title="Berkeley",
    format="mask-png",
    summary="96 images, one mask each (RITM's copy)",
    layouts=(Layout("Berkeley/masks", "Berkeley/images"), Layout("masks", "images")),
    format_options={"threshold": 128, "channel": "first"},
    files=(_zip("Berkeley"),),
    licence=_LICENCE,
    homepage="https://github.com/SamsungLabs/ritm_interactive_segmentation",
    images=96,
    protocols=_PROTOCOLS,
    metrics=("mIoU",),
    default_root="datasets",
    notes="RITM's ignore band (mask value 128) counts as background in evalsuite",
)
DAVIS = DatasetSpec(
    name="davis",
    title="DAVIS (interactive, 345 images)",
    format="instance-png",
    summary="345 video frames for interactive segmentation, one object each (RITM's copy)",
    layouts=(Layout("DAVIS/gt", "DAVIS/img"), Layout("gt", "img")),
    format_options={"merge": True},
    files=(_zip("DAVIS"),),
    licence=_LICENCE,
    homepage="https://github.com/SamsungLabs/ritm_interactive_segmentation",
    images=345,
    protocols=_PROTOCOLS,
    metrics=("mIoU",),
    default_root="datasets",
)
