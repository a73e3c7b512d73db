"""The four HQ-Seg-44K test sets SAM-HQ evaluates on: DIS5K-VD, COIFT, HRSOD, ThinObject5K-TE.

Layout and masks as SAM-HQ's evaluation reads them (SysCV/sam-hq @ fb181f8e, ``train/train.py``
664-689; ``train/utils/dataloader.py`` 241-255): images ``*.jpg``, masks ``<same stem>.png``, one object
per image, object = ``gt > 128`` in the first channel, under SAM-HQ's ``data/`` folder (evalsuite's
default root for them: ``./datasets/sam-hq``; ``--data-root`` may point at SAM-HQ's ``data/`` itself).
SAM-HQ reports mIoU and boundary IoU (mBIoU) per dataset, so their protocols list both.

Where they come from: SAM-HQ publishes HQ-Seg-44K on Hugging Face (``sam-hq-team/sam-hq-training``,
folder ``data/``; ``train/README.md`` §1). The archive names (``DIS5K.zip``, ``thin_object_detection.zip``)
and their inner folders come from third-party download scripts and directory listings, not from
SAM-HQ; no SHA-256 is published for either, so each is recorded at the first download. Image counts
are from those listings too (470, 280, 287, 500). The originals: DIS5K (xuebinqin/DIS, README §1.1;
terms in ``DIS5K Dataset Terms of Use.pdf``, also inside the archive) and COIFT / HRSOD / ThinObject-5K
(liewjunhao/thin-object-selection, "Dataset and Pre-computed Masks", whose project is CC BY-NC 4.0;
dataset-specific terms are not stated there).
"""

from __future__ import annotations

from ..data.spec import DataFile, DatasetSpec, Layout

_HF = "https://huggingface.co/sam-hq-team/sam-hq-training/resolve/main/data"
_MASKS = {"threshold": 128, "channel": "first"}  # SAM-HQ: gt > 128, channel 0 of a 3-channel file
_METRICS = ("mIoU", "mBIoU")
_PROTOCOLS = ("box", "1click", "3click", "noc20")
_THIN = "thin_object_detection"
_THIN_LICENCE = (
    "not stated by SAM-HQ's copy; the publishing project (liewjunhao/thin-object-selection) is "
    "CC BY-NC 4.0, dataset-specific terms not stated"
)


def _thin_archive(folder: str) -> DataFile:
    return DataFile(
        f"sam-hq-{folder.lower()}",
        "thin_object_detection.zip",
        f"{_HF}/thin_object_detection.zip",
        extracts=((f"{_THIN}/{folder}/", f"{_THIN}/{folder}"),),
    )


def _hq(name: str, title: str, masks: str, images: str, count: int, archive: DataFile, **more) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        title=title,
        format="mask-png",
        layouts=(Layout(masks, images), Layout(masks.split("/", 1)[1], images.split("/", 1)[1])),
        format_options=dict(_MASKS),
        files=(archive,),
        images=count,
        protocols=_PROTOCOLS,
        metrics=_METRICS,
        default_root="datasets/sam-hq",
        homepage="https://github.com/SysCV/sam-hq",
        **more,
    )


DIS5K_VD = _hq(
    "dis5k-vd",
    "DIS5K validation (DIS-VD)",
    "DIS5K/DIS-VD/gt",
    "DIS5K/DIS-VD/im",
    470,
    DataFile("sam-hq-dis5k", "DIS5K.zip", f"{_HF}/DIS5K.zip", extracts=(("DIS5K/DIS-VD/", "DIS5K/DIS-VD"),)),
    summary="Dichotomous image segmentation, validation split: high-resolution, fine structures",
    licence="DIS5K Dataset Terms of Use (the PDF in xuebinqin/DIS and in the archive)",
)
COIFT = _hq(
    "coift",
    "COIFT",
    f"{_THIN}/COIFT/masks",
    f"{_THIN}/COIFT/images",
    280,
    _thin_archive("COIFT"),
    summary="COIFT as SAM-HQ evaluates it: one object per image, thin structures",
    licence=_THIN_LICENCE,
)
HRSOD = _hq(
    "hrsod",
    "HRSOD",
    f"{_THIN}/HRSOD/masks_max255",
    f"{_THIN}/HRSOD/images",
    287,
    _thin_archive("HRSOD"),
    summary="High-resolution salient object detection (SAM-HQ's copy, masks_max255)",
    licence=_THIN_LICENCE + "; HRSOD's original terms not read",
)
THINOBJECT5K_TE = _hq(
    "thinobject5k-te",
    "ThinObject-5K test",
    f"{_THIN}/ThinObject5K/masks_test",
    f"{_THIN}/ThinObject5K/images_test",
    500,
    _thin_archive("ThinObject5K"),
    summary="ThinObject-5K test split (SAM-HQ's copy: images_test / masks_test)",
    licence=_THIN_LICENCE,
)
