"""LVIS v1 val: 19,809 COCO 2017 images (from train2017 and val2017) with 1,203 categories.

The annotation file is https already (dl.fbaipublicfiles.com). No reliable published checksum was
found (one project pins 2bf946b9..., but describes it both as the zip's and as the extracted JSON's
hash), so the archive's and the JSON's SHA-256 are recorded by the first ``evalsuite download lvis``.
The images come one by one from COCO's https origin (only those LVIS val references, "needed"), or
as COCO's two image archives. The ViTDet-H detections: TinySAM release 3.0 (PROTOCOLS.md §4).
"""

from __future__ import annotations

from ..data.spec import DataFile, DatasetSpec, Layout
from .coco import COCO_HTTPS, TRAIN2017_IMAGES, VAL2017_IMAGES

ANNOTATIONS = DataFile(
    "lvis-v1-val-annotations",
    "lvis_v1_val.json.zip",
    "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
    official_url="https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
    extracts=(("lvis_v1_val.json", "annotations/lvis_v1_val.json"),),
)
VITDET_BOXES = DataFile(
    "lvis-vitdet",
    "lvis_instances_results_vitdet.json",
    "https://github.com/xinghaochen/TinySAM/releases/download/3.0/lvis_instances_results_vitdet.json",
    detector="ViTDet-H Cascade Mask R-CNN (detectron2 cascade_mask_rcnn_vitdet_h_100ep), LVIS v1 val",
)

LVIS = DatasetSpec(
    name="lvis",
    official_name="lvis-v1-val",
    title="LVIS v1 val",
    format="lvis",
    summary="LVIS v1 validation: 19,809 COCO images, 1,203 categories (federated annotation)",
    layouts=(
        Layout("annotations/lvis_v1_val.json"),
        Layout("lvis_v1_val.json"),
        Layout("../lvis/lvis_v1_val.json"),
    ),
    sha256=None,  # no reliable published value: recorded when `evalsuite download lvis` extracts it
    annotation="lvis_v1_val.json",
    files=(ANNOTATIONS,),
    image_archives=(TRAIN2017_IMAGES, VAL2017_IMAGES),
    image_base_url=COCO_HTTPS,
    licence="CC BY 4.0 (annotations); COCO images",
    homepage="https://www.lvisdataset.org",
    images=19_809,
    protocols=("box", "1click", "3click", "5click", "noc20", "vitdet"),
    ap_evaluator="LVISEval",
    detections=(VITDET_BOXES,),
    sample=Layout("annotations/lvis_v1_val.json"),
    default_root="datasets/coco",
)
