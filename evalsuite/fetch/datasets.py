"""COCO 2017 / LVIS v1 val: the archive catalogue and their download (verified, resumable, extracted safely).

Why: real evaluation needs 1-20 GB of archives from hosts that are easy to get wrong, archives
that could carry hostile member names, and the LVIS val images that live in COCO *train*2017.
Every archive is checked against a pinned SHA-256 where one is published (else the value seen at
the first successful extraction is recorded and checked afterwards), transfers resume, and
extraction goes to a temporary folder inside the root that is moved into place only when complete.

Transport (COCO): ``images.cocodataset.org`` is an alias of the Amazon S3 bucket of that name;
over https it presents the certificate of ``s3.amazonaws.com``, so https to it fails hostname
verification and the COCO site links plain-http URLs. evalsuite never fetches those over http.
It uses the bucket's path-style https origin, ``https://s3.amazonaws.com/images.cocodataset.org/``
(same bytes under a valid certificate: the switch mlcommons/inference PR #2572 made for the
same reason), AND pins the published SHA-256 and size of each COCO archive, so an archive is
accepted only if byte-identical to the published one. Per-image files (LVIS "needed" mode) have
no published checksums: they come only over that https origin, from a URL evalsuite builds from
the split and file name, never from a URL read out of the annotation file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..data.jsonio import read_json, sha256_file
from ..data.locate import DATA_ROOT_ENV, DEFAULT_DATA_ROOT
from ..data.readers import lvis_image_relpath
from ..errors import EvalsuiteError, InputError, UnknownNameError, did_you_mean
from .artefact import DOWNLOADED, FIRST_USE, Artefact, TrustStore, expected_sha256, fetch, remember
from .cache import cache_dir
from .extract import ArchiveError, Extract, check_space, safe_extract
from .http import DownloadError, check_url, download, part_path

IMAGE_MODES = ("needed", "archives", "none")
COCO_HTTPS = "https://s3.amazonaws.com/images.cocodataset.org"  # see the module docstring
_COCO_HTTP = "http://images.cocodataset.org"  # what cocodataset.org links (documentation only)
SPLITS = ("train2017", "val2017")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:jpe?g|png)", re.IGNORECASE)
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass(frozen=True)
class Archive(Artefact):
    """A published dataset archive: an :class:`Artefact` plus what it extracts to."""

    kind: str = "datasets"
    official_url: str = ""  # as the dataset's site publishes it (may be http: documentation only)
    extracts: tuple[Extract, ...] = ()
    md5: str | None = None  # published MD5, for a check by hand; SHA-256 is what evalsuite checks
    files: int | None = None  # file members in the archive, where known


# * SHA-256 of val2017.zip and annotations_trainval2017.zip: ParlAI's COCO 2017 build script
#   (facebookresearch/ParlAI, parlai/tasks/coco_caption), a Julia DataDeps registration of
#   annotations_trainval2017.zip at images.cocodataset.org, a TFDS-style COCO builder
#   (_IMAGES_CHECKSUMS with base http://images.cocodataset.org/zips, also giving train2017.zip),
#   and several data receipts that downloaded the official files and recorded bytes + MD5 + SHA-256
#   (815,585,330 / 252,907,541 bytes). train2017.zip: 19,336,861,798 bytes and its SHA-256 from a
#   manifest pinning the official URL, matched by the TFDS-style builder and an mmdet-style
#   reproduction lock. (ParlAI's train2017.zip value differs: it comes from ParlAI's own
#   re-hosted copy, not the official file.)
# * MD5s: torchvision-style COCO loaders (e.g. the R torch `coco` datasets) and md5sum manifests.
# * File counts: 5,000 val2017 and 118,287 train2017 images (many receipts); the annotations zip
#   holds 6 JSON files (instances, captions, person_keypoints x train/val).
# * https origin: mlcommons/inference PR #2572 (curl: "no alternative certificate subject name
#   matches target host name 'images.cocodataset.org'"; path-style S3 URL serves the same bytes);
#   cocodataset/cocodataset.github.io issue #60 (downloads are plain http).
# * LVIS: https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip is https already. No reliable
#   published checksum was found (one project pins 2bf946b9..., but describes it both as the zip's
#   and as the extracted JSON's hash), so its SHA-256 is recorded on first download.
ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            "coco-val2017-images",
            "val2017.zip",
            f"{COCO_HTTPS}/zips/val2017.zip",
            official_url=f"{_COCO_HTTP}/zips/val2017.zip",
            extracts=(Extract("val2017/", "val2017"),),
            size=815_585_330,
            sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
            md5="442b8da7639aecaf257c1dceb8ba8c80",
            files=5_000,
        ),
        Archive(
            "coco-annotations-2017",
            "annotations_trainval2017.zip",
            f"{COCO_HTTPS}/annotations/annotations_trainval2017.zip",
            official_url=f"{_COCO_HTTP}/annotations/annotations_trainval2017.zip",
            extracts=(Extract("annotations/instances_val2017.json", "annotations/instances_val2017.json"),),
            size=252_907_541,
            sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
            md5="f4bbac642086de4f52a3fdda2de5fa2c",
            files=6,
        ),
        Archive(
            "coco-train2017-images",
            "train2017.zip",
            f"{COCO_HTTPS}/zips/train2017.zip",
            official_url=f"{_COCO_HTTP}/zips/train2017.zip",
            extracts=(Extract("train2017/", "train2017"),),
            size=19_336_861_798,
            sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
            md5="cced6f7f71b7629ddf16f17bbcfab6b2",
            files=118_287,
        ),
        Archive(
            "lvis-v1-val-annotations",
            "lvis_v1_val.json.zip",
            "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
            official_url="https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
            extracts=(Extract("lvis_v1_val.json", "annotations/lvis_v1_val.json"),),
        ),
    )
}

_COCO = ("coco-annotations-2017", "coco-val2017-images")
_LVIS_ANN = "lvis-v1-val-annotations"
_LVIS_ARCHIVES = ("coco-train2017-images", "coco-val2017-images")


def archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise UnknownNameError(f"no dataset archive {name!r}.{did_you_mean(name, list(ARCHIVES))}")
    return ARCHIVES[name]


def datasets_dir() -> Path:
    """Where archives are downloaded (and kept with ``keep_archives``): ``home()/datasets``."""
    return cache_dir("datasets")


def default_root() -> Path:
    """The data root a run reads by default (as ``locate``): $EVALSUITE_DATA, else ./datasets/coco."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


@dataclass
class DownloadReport:
    """What a ``download_*`` call found in place, fetched, and failed to fetch."""

    root: Path
    annotations: Path
    fetched: list[str] = field(default_factory=list)  # archive names downloaded + extracted now
    present: list[str] = field(default_factory=list)  # archive names already in place
    images_needed: int = 0
    images_present: int = 0  # already there before this call
    images_fetched: int = 0
    images_failed: list[tuple[str, str]] = field(default_factory=list)  # (split/file, reason)


# --- archives ----------------------------------------------------------------------------------


def count_files(folder: Path) -> int:
    """Visible files directly in ``folder`` (0 when it does not exist)."""
    try:
        return sum(1 for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError:
        return 0


def _in_place(art: Archive, root: Path) -> bool:
    """Everything ``art`` extracts to is there (a folder: with the archive's file count, where known)."""
    for ex in art.extracts:
        target = root / ex.dest
        if ex.is_folder:
            expected = art.files if len(art.extracts) == 1 else None
            n = count_files(target)
            if n == 0 or (expected is not None and n < expected):
                return False
        elif not target.is_file():
            return False
    return True


def _install(art: Archive, root: Path, base_url: str | None, progress: bool, keep: bool) -> bool:
    """Download, verify and extract ``art`` unless already in place; True when it was fetched now."""
    if _in_place(art, root):
        return False
    dest = datasets_dir() / art.filename
    fresh = not dest.is_file()  # fetched now, not an archive found in the cache
    if fresh:
        part = part_path(dest)
        check_space(
            dest.parent, (art.size or 0) - (part.stat().st_size if part.exists() else 0), art.filename
        )
    try:
        path, sha = fetch(art, datasets_dir(), base_url, progress)
    except DownloadError as e:
        if not art.sha256 and expected_sha256(art, datasets_dir()).sha256 and "SHA-256 mismatch" in e.message:
            e.message += (
                " (the expected value was recorded at first use; delete that entry only if the file "
                "changed upstream)"
            )
        raise
    try:
        safe_extract(path, root, art.extracts, files=art.files, progress=progress)
    except ArchiveError as e:
        path.unlink(missing_ok=True)  # wrong bytes: resuming or re-extracting them cannot help
        e.message += "; the archive was deleted, run the same command again to download it afresh"
        raise
    # the official bytes: a pinned SHA-256, or fetched just now from the official URL
    official = art.sha256 is not None or (base_url is None and fresh)
    remember(art, sha, datasets_dir(), DOWNLOADED if official else FIRST_USE)
    if official:  # the annotation files just extracted are the official ones (see data.catalog)
        store = TrustStore(datasets_dir())
        for ex in art.extracts:
            if not ex.is_folder:
                store.set(Path(ex.dest).name, sha256_file(root / ex.dest), DOWNLOADED)
    if not keep:
        path.unlink(missing_ok=True)
    return True


# --- COCO ---------------------------------------------------------------------------------------


def _prepare(root: Path | str, base_url: str | None) -> Path:
    if base_url is not None:
        check_url(base_url)  # a mirror gets the same rules as the official hosts: https only
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _install_all(
    names: Iterable[str], root: Path, report: DownloadReport, base_url: str | None, progress: bool, keep: bool
) -> None:
    for name in names:
        fetched = _install(archive(name), root, base_url, progress, keep)
        (report.fetched if fetched else report.present).append(name)


def download_coco(
    root: Path | str, progress: bool = True, base_url: str | None = None, keep_archives: bool = False
) -> DownloadReport:
    """COCO val2017 images and 2017 instance annotations → ``<root>/val2017/``, ``<root>/annotations/``.

    Parts already in place are skipped; archives are SHA-256 checked, resumable, and deleted
    after extraction unless ``keep_archives``. ``base_url`` replaces the hosts (a mirror holding
    the same file names, or the tests' loopback server).
    """
    root = _prepare(root, base_url)
    report = DownloadReport(root=root, annotations=root / "annotations" / "instances_val2017.json")
    _install_all(_COCO, root, report, base_url, progress, keep_archives)
    return report


# --- LVIS ---------------------------------------------------------------------------------------


def lvis_image_files(ann_file: Path) -> list[PurePosixPath]:
    """``<split>/<file>`` of every image an LVIS file references (sorted, unique), validated.

    The split and name are all that is taken from ``coco_url``: the download URL is built by
    evalsuite, so an annotation file cannot point the downloader at another host or path.
    """
    data, _ = read_json(ann_file)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{ann_file}: no 'images' list; not an LVIS annotation file")
    out: set[PurePosixPath] = set()
    for img in images:
        url = img.get("coco_url") if isinstance(img, dict) else None
        ident = img.get("id", "?") if isinstance(img, dict) else "?"
        try:
            rel = lvis_image_relpath(url) if isinstance(url, str) else None
        except ValueError:
            rel = None
        if rel is None or rel.parts[0] not in SPLITS or not _IMAGE_NAME.fullmatch(rel.parts[1]):
            raise InputError(
                f"{ann_file}: image {ident}: coco_url {url!r} does not name a train2017/val2017 image file"
            )
        out.add(rel)
    return sorted(out)


def _fetch_image(rel: PurePosixPath, root: Path, base: str, timeout: float) -> None:
    """One image: staged under a hidden name (resumable), checked to be an image, then renamed."""
    dest = root.joinpath(*rel.parts)
    stage = dest.with_name(f".{dest.name}.dl")
    for attempt in range(2):  # one retry: the .part resumes, flaky links are common over 20k files
        try:
            if not stage.is_file():
                download(f"{base}/{rel.as_posix()}", stage, progress=False, timeout=timeout)
            break
        except DownloadError:
            if attempt:
                raise
    with open(stage, "rb") as f:
        head = f.read(8)
    if not head.startswith(_IMAGE_MAGIC):
        stage.unlink(missing_ok=True)
        raise DownloadError(f"{base}/{rel.as_posix()}: not a JPEG/PNG image (starts with {head[:4]!r})")
    os.replace(stage, dest)


def _fetch_images(
    rels: list[PurePosixPath], root: Path, base: str, workers: int, progress: bool, timeout: float
) -> tuple[int, list[tuple[str, str]]]:
    """Fetch ``rels`` with a small thread pool; (number fetched, [(split/file, reason)] failed)."""
    from tqdm import tqdm

    for split in {r.parts[0] for r in rels}:
        (root / split).mkdir(parents=True, exist_ok=True)
    fetched = 0
    failed: list[tuple[str, str]] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalsuite-lvis")
    try:
        with tqdm(total=len(rels), desc="LVIS images", unit="img", disable=not progress) as bar:
            pending: dict[Future, PurePosixPath] = {}
            todo = iter(rels)
            while True:
                while len(pending) < 4 * workers and (rel := next(todo, None)) is not None:
                    pending[pool.submit(_fetch_image, rel, root, base, timeout)] = rel
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    rel = pending.pop(fut)
                    err = fut.exception()
                    if err is None:
                        fetched += 1
                    elif isinstance(err, (EvalsuiteError, OSError)):
                        failed.append((rel.as_posix(), str(err).splitlines()[0]))
                    else:
                        raise err
                    bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return fetched, sorted(failed)


def download_lvis(
    root: Path | str,
    images: str = "needed",
    progress: bool = True,
    base_url: str | None = None,
    keep_archives: bool = False,
    workers: int = 8,
    timeout: float = 60,
) -> DownloadReport:
    """LVIS v1 val annotations → ``<root>/annotations/lvis_v1_val.json``, plus its images.

    ``images``: ``"needed"`` fetches only the images LVIS val references (from COCO train2017
    and val2017), one by one over https into ``<root>/<split>/``, skipping those present, with
    ``workers`` threads; failures are counted, listed in ``datasets_dir()/lvis_v1_val_failed.txt``
    and raised as one :class:`DownloadError` after all others finished (run again to retry them).
    ``"archives"`` fetches the whole train2017 + val2017 zips (~20 GB); ``"none"`` only the file.
    """
    if images not in IMAGE_MODES:
        raise InputError(f"--images must be one of {', '.join(IMAGE_MODES)}, not {images!r}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    root = _prepare(root, base_url)
    ann = root / "annotations" / "lvis_v1_val.json"
    report = DownloadReport(root=root, annotations=ann)
    _install_all((_LVIS_ANN,), root, report, base_url, progress, keep_archives)
    if images == "archives":
        _install_all(_LVIS_ARCHIVES, root, report, base_url, progress, keep_archives)
    elif images == "needed":
        rels = lvis_image_files(ann)
        todo = [r for r in rels if not root.joinpath(*r.parts).is_file()]
        report.images_needed, report.images_present = len(rels), len(rels) - len(todo)
        base = COCO_HTTPS if base_url is None else base_url.rstrip("/")
        report.images_fetched, report.images_failed = _fetch_images(
            todo, root, base, workers, progress, timeout
        )
        failures = datasets_dir() / "lvis_v1_val_failed.txt"
        if report.images_failed:
            failures.parent.mkdir(parents=True, exist_ok=True)
            failures.write_text("".join(f"{rel}\t{why}\n" for rel, why in report.images_failed))
            first, why = report.images_failed[0]
            err = DownloadError(
                f"{len(report.images_failed)} of {len(todo)} LVIS images could not be fetched "
                f"(first: {first}: {why}); the others are in place; list in {failures}; "
                "run the same command again to retry the failed ones"
            )
            err.report = report  # type: ignore[attr-defined]
            raise err
        failures.unlink(missing_ok=True)
    return report
