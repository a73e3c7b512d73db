"""COCO 2017 val instances: the data of the EfficientSAM paper's Table 4 and 5 (and most SAM papers').

Transport: ``images.cocodataset.org`` is an alias of the Amazon S3 bucket of that name; over https it
presents the certificate of ``s3.amazonaws.com``, so https to it fails hostname verification and the
COCO site links plain-http URLs. evalsuite never fetches those over http: it uses the bucket's
path-style https origin (same bytes under a valid certificate: the switch mlcommons/inference PR #2572
made for the same reason; cocodataset/cocodataset.github.io issue #60) AND pins the published SHA-256
and size of each archive, so an archive is accepted only if byte-identical to the published one.

Where the pinned values come from:

* SHA-256 of val2017.zip and annotations_trainval2017.zip: ParlAI's COCO 2017 build script
  (facebookresearch/ParlAI, parlai/tasks/coco_caption), a Julia DataDeps registration of
  annotations_trainval2017.zip at images.cocodataset.org, a TFDS-style COCO builder
  (_IMAGES_CHECKSUMS with base http://images.cocodataset.org/zips, also giving train2017.zip),
  and several data receipts that downloaded the official files and recorded bytes + MD5 + SHA-256
  (815,585,330 / 252,907,541 bytes). train2017.zip: 19,336,861,798 bytes and its SHA-256 from a
  manifest pinning the official URL, matched by the TFDS-style builder and an mmdet-style
  reproduction lock. (ParlAI's train2017.zip value differs: it comes from ParlAI's own re-hosted
  copy, not the official file.)
* MD5s: torchvision-style COCO loaders (e.g. the R torch ``coco`` datasets) and md5sum manifests.
* File counts: 5,000 val2017 and 118,287 train2017 images (many receipts); the annotations zip holds
  6 JSON files (instances, captions, person_keypoints x train/val).
* instances_val2017.json: checked by a public dataset-preparation script right after it verifies the
  SHA-256 of annotations_trainval2017.zip (113a836d…, pinned below).
* The ViTDet-H detection file: TinySAM release 2.0 (README: "detection boxes produced by ViTDet model";
  PROTOCOLS.md §4); nobody publishes its SHA-256, so it is recorded at the first download.
"""

from __future__ import annotations

from ..data.spec import DataFile, DatasetSpec, Layout

#: the https origin of the COCO bucket (see the module docstring)
COCO_HTTPS = "https://s3.amazonaws.com/images.cocodataset.org"
_COCO_HTTP = "http://images.cocodataset.org"  # what cocodataset.org links (documentation only)

VAL2017_IMAGES = DataFile(
    "coco-val2017-images",
    "val2017.zip",
    f"{COCO_HTTPS}/zips/val2017.zip",
    official_url=f"{_COCO_HTTP}/zips/val2017.zip",
    extracts=(("val2017/", "val2017"),),
    size=815_585_330,
    sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
    md5="442b8da7639aecaf257c1dceb8ba8c80",
    files=5_000,
)
ANNOTATIONS_2017 = DataFile(
    "coco-annotations-2017",
    "annotations_trainval2017.zip",
    f"{COCO_HTTPS}/annotations/annotations_trainval2017.zip",
    official_url=f"{_COCO_HTTP}/annotations/annotations_trainval2017.zip",
    extracts=(("annotations/instances_val2017.json", "annotations/instances_val2017.json"),),
    size=252_907_541,
    sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
    md5="f4bbac642086de4f52a3fdda2de5fa2c",
    files=6,
)
TRAIN2017_IMAGES = DataFile(
    "coco-train2017-images",
    "train2017.zip",
    f"{COCO_HTTPS}/zips/train2017.zip",
    official_url=f"{_COCO_HTTP}/zips/train2017.zip",
    extracts=(("train2017/", "train2017"),),
    size=19_336_861_798,
    sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
    md5="cced6f7f71b7629ddf16f17bbcfab6b2",
    files=118_287,
)
VITDET_BOXES = DataFile(
    "coco-vitdet",
    "coco_instances_results_vitdet.json",
    "https://github.com/xinghaochen/TinySAM/releases/download/2.0/coco_instances_results_vitdet.json",
    detector="ViTDet-H Cascade Mask R-CNN (detectron2 cascade_mask_rcnn_vitdet_h_75ep), COCO val2017",
    detections=92_850,
)

COCO = DatasetSpec(
    name="coco",
    official_name="coco-val2017",
    title="COCO val2017",
    format="coco",
    summary="COCO 2017 validation instances: 5,000 images, 80 categories (crowd regions flagged)",
    layouts=(
        Layout("annotations/instances_val2017.json", "val2017"),
        Layout("instances_val2017.json", "val2017"),
    ),
    sha256="e8c7f7908f1d7278341fae127d0da654f102f11bd7b21d8aeefa635b8c810b6f",
    sha256_source=(
        "a public COCO preparation script that checks it after verifying the archive's pinned SHA-256"
    ),
    annotation="instances_val2017.json",
    files=(ANNOTATIONS_2017, VAL2017_IMAGES),
    licence="CC BY 4.0 (annotations); images under their Flickr licences",
    homepage="https://cocodataset.org",
    images=5_000,
    protocols=("box", "1click", "3click", "5click", "noc20", "vitdet"),
    ap_evaluator="COCOeval",
    detections=(VITDET_BOXES,),
    sample=Layout("annotations/instances_val2017.json", "val2017"),
    default_root="datasets/coco",
)
