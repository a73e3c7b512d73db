"""COCO 2017 / LVIS v1 val: a registry of archives, verified download, safe extraction, ``doctor``.

Why: real evaluation needs 1-20 GB of archives from hosts that are easy to get wrong, archives
that could carry hostile member names, and the LVIS val images that live in COCO *train*2017.
Every archive is checked against a pinned SHA-256 where one is published (else the value seen at
first download is recorded and checked afterwards), transfers resume, and extraction goes to a
temporary folder inside the root that is moved into place only when complete.

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

import importlib.util
import os
import re
import shlex
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from .data.jsonio import read_json, sha256_file
from .data.readers import lvis_image_relpath
from .download import DownloadError, ShaRecord, check_url, download, part_path
from .errors import EvalsuiteError, InputError, UnknownNameError, did_you_mean
from .models.checkpoints import home

IMAGE_MODES = ("needed", "archives", "none")
COCO_HTTPS = "https://s3.amazonaws.com/images.cocodataset.org"  # see the module docstring
_COCO_HTTP = "http://images.cocodataset.org"  # what cocodataset.org links (documentation only)
_SPLITS = ("train2017", "val2017")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:jpe?g|png)", re.IGNORECASE)
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_TMP_PREFIX = ".evalsuite-extract-"
_EXPECTED_COCO_VAL_IMAGES = 5_000
_EXPECTED_LVIS_VAL_IMAGES = 19_809  # PROTOCOLS.md §4


class ArchiveError(DownloadError):
    """An archive is corrupt, not the published one, or unsafe to extract (exit status 1)."""


@dataclass(frozen=True)
class Extract:
    """What an archive gives: ``member`` (a file, or a folder ending in '/') → ``dest`` under the root."""

    member: str
    dest: str

    @property
    def is_folder(self) -> bool:
        return self.member.endswith("/")


@dataclass(frozen=True)
class Artefact:
    """A published archive: where it is fetched from, what it must be, what it extracts to."""

    name: str
    filename: str
    url: str  # the https URL evalsuite fetches
    official_url: str  # as the dataset's site publishes it (may be http: documentation only)
    extracts: tuple[Extract, ...]
    size: int | None = None  # bytes, where published
    sha256: str | None = None  # where published; else recorded on first download
    md5: str | None = None  # published MD5, for a check by hand; SHA-256 is what evalsuite checks
    files: int | None = None  # file members in the archive, where known


# Sources (public code and data receipts found with the search tools; all agree):
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
ARTEFACTS: dict[str, Artefact] = {
    a.name: a
    for a in (
        Artefact(
            "coco-val2017-images",
            "val2017.zip",
            f"{COCO_HTTPS}/zips/val2017.zip",
            f"{_COCO_HTTP}/zips/val2017.zip",
            (Extract("val2017/", "val2017"),),
            size=815_585_330,
            sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
            md5="442b8da7639aecaf257c1dceb8ba8c80",
            files=5_000,
        ),
        Artefact(
            "coco-annotations-2017",
            "annotations_trainval2017.zip",
            f"{COCO_HTTPS}/annotations/annotations_trainval2017.zip",
            f"{_COCO_HTTP}/annotations/annotations_trainval2017.zip",
            (Extract("annotations/instances_val2017.json", "annotations/instances_val2017.json"),),
            size=252_907_541,
            sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
            md5="f4bbac642086de4f52a3fdda2de5fa2c",
            files=6,
        ),
        Artefact(
            "coco-train2017-images",
            "train2017.zip",
            f"{COCO_HTTPS}/zips/train2017.zip",
            f"{_COCO_HTTP}/zips/train2017.zip",
            (Extract("train2017/", "train2017"),),
            size=19_336_861_798,
            sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
            md5="cced6f7f71b7629ddf16f17bbcfab6b2",
            files=118_287,
        ),
        Artefact(
            "lvis-v1-val-annotations",
            "lvis_v1_val.json.zip",
            "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
            "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip",
            (Extract("lvis_v1_val.json", "annotations/lvis_v1_val.json"),),
        ),
    )
}

_COCO = ("coco-annotations-2017", "coco-val2017-images")
_LVIS_ANN = "lvis-v1-val-annotations"
_LVIS_ARCHIVES = ("coco-train2017-images", "coco-val2017-images")


def artefact(name: str) -> Artefact:
    if name not in ARTEFACTS:
        raise UnknownNameError(f"no dataset artefact {name!r}.{did_you_mean(name, list(ARTEFACTS))}")
    return ARTEFACTS[name]


def datasets_dir() -> Path:
    """Where archives are downloaded (and kept with ``keep_archives``): ``home()/datasets``."""
    return home() / "datasets"


def sha_record() -> ShaRecord:
    return ShaRecord(datasets_dir() / "sha256.json")


def default_root() -> Path:
    """The data root a run reads by default (as ``locate``): $EVALSUITE_DATA, else ./datasets/coco."""
    from .data.locate import DATA_ROOT_ENV, DEFAULT_DATA_ROOT

    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


@dataclass
class DownloadReport:
    """What a ``download_*`` call found in place, fetched, and failed to fetch."""

    root: Path
    annotations: Path
    fetched: list[str] = field(default_factory=list)  # artefact names downloaded + extracted now
    present: list[str] = field(default_factory=list)  # artefact names already in place
    images_needed: int = 0
    images_present: int = 0  # already there before this call
    images_fetched: int = 0
    images_failed: list[tuple[str, str]] = field(default_factory=list)  # (split/file, reason)


# --- archives ----------------------------------------------------------------------------------


def _url(art: Artefact, base_url: str | None) -> str:
    return art.url if base_url is None else base_url.rstrip("/") + "/" + art.filename


def _count_files(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError:
        return 0


def _in_place(art: Artefact, root: Path) -> bool:
    """Everything ``art`` extracts to is there (a folder: with the archive's file count, where known)."""
    for ex in art.extracts:
        target = root / ex.dest
        if ex.is_folder:
            expected = art.files if len(art.extracts) == 1 else None
            n = _count_files(target)
            if n == 0 or (expected is not None and n < expected):
                return False
        elif not target.is_file():
            return False
    return True


def _check_space(folder: Path, needed: int, what: str) -> None:
    """Fail before a long transfer or extraction that cannot fit (a clear line instead of ENOSPC later)."""
    if needed <= 0:
        return
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise EvalsuiteError(
            f"not enough free space for {what} at {folder}: needs {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB free; free some space or choose another folder"
        )


def _expected_sha(art: Artefact) -> tuple[str | None, str]:
    if art.sha256:
        return art.sha256, "published"
    return sha_record().get(art.filename), f"recorded at first download in {sha_record().path}"


def _fetch(art: Artefact, base_url: str | None, progress: bool) -> tuple[Path, str]:
    """The verified archive in ``datasets_dir()`` (an archive already there is checked, not refetched)."""
    dest = datasets_dir() / art.filename
    expected, source = _expected_sha(art)
    if dest.is_file():
        got = sha256_file(dest)
        if expected is not None and got != expected:
            raise ArchiveError(
                f"{dest}: SHA-256 {got} differs from the {source} value {expected}; "
                "delete the file and run the same command again"
            )
        if art.size is not None and dest.stat().st_size != art.size:
            raise ArchiveError(f"{dest}: {dest.stat().st_size} bytes, expected {art.size}; delete it")
        return dest, got
    part = part_path(dest)
    have = part.stat().st_size if part.exists() else 0
    _check_space(dest.parent, (art.size or 0) - have, art.filename)
    try:
        got = download(_url(art, base_url), dest, sha256=expected, size=art.size, progress=progress)
    except DownloadError as e:
        if expected is not None and not art.sha256 and "SHA-256 mismatch" in e.message:
            e.message += f" (expected value {source}; delete that entry only if the file changed upstream)"
        raise
    return dest, got


def _install(art: Artefact, root: Path, base_url: str | None, progress: bool, keep: bool) -> bool:
    """Download, verify and extract ``art`` unless already in place; True when it was fetched now."""
    if _in_place(art, root):
        return False
    archive, sha = _fetch(art, base_url, progress)
    try:
        safe_extract(archive, root, art.extracts, files=art.files, progress=progress)
    except ArchiveError as e:
        archive.unlink(missing_ok=True)  # wrong bytes: resuming or re-extracting them cannot help
        e.message += "; the archive was deleted, run the same command again to download it afresh"
        raise
    if art.sha256 is None and sha_record().get(art.filename) is None:
        sha_record().set(art.filename, sha)  # only a complete, extractable archive becomes the anchor
    if not keep:
        archive.unlink(missing_ok=True)
    return True


# --- safe extraction ---------------------------------------------------------------------------


@dataclass
class _Entry:
    name: str
    kind: str  # "file" | "dir" | "link" | "special"
    size: int
    handle: zipfile.ZipInfo | tarfile.TarInfo


class _Archive:
    """Zip or tar, read through one interface so the same safety rules apply to both."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        lower = path.name.lower()
        try:
            if lower.endswith(".zip"):
                self._zip = zipfile.ZipFile(path)
                self.entries = [self._zip_entry(i) for i in self._zip.infolist()]
            elif lower.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
                self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
                self.entries = [self._tar_entry(m) for m in self._tar.getmembers()]
            else:
                raise ArchiveError(f"{path}: not a .zip or .tar archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, ValueError) as e:
            self.close()
            raise ArchiveError(f"{path}: not a valid archive ({e or type(e).__name__})") from None

    @staticmethod
    def _zip_entry(info: zipfile.ZipInfo) -> _Entry:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            kind = "link"
        elif info.is_dir():
            kind = "dir"
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            kind = "special"
        else:
            kind = "file"
        return _Entry(info.filename, kind, info.file_size, info)

    @staticmethod
    def _tar_entry(m: tarfile.TarInfo) -> _Entry:
        if m.issym() or m.islnk():
            kind = "link"
        elif m.isdir():
            kind = "dir"
        elif m.isfile():
            kind = "file"
        else:
            kind = "special"
        return _Entry(m.name, kind, m.size, m)

    def open(self, entry: _Entry) -> IO[bytes]:
        if self._zip is not None:
            return self._zip.open(entry.handle)  # type: ignore[arg-type]
        assert self._tar is not None
        f = self._tar.extractfile(entry.handle)  # type: ignore[arg-type]
        if f is None:
            raise ArchiveError(f"{self.path}: cannot read member {entry.name!r}")
        return f

    def close(self) -> None:
        for a in (self._zip, self._tar):
            if a is not None:
                a.close()


def _safe_name(archive: Path, name: str) -> PurePosixPath:
    """A member name as a relative path that stays inside the target, or an ArchiveError."""
    bad = None
    if "\x00" in name or "\\" in name:
        bad = "a NUL or backslash in its name"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        bad = "an absolute path"
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".", "/")]
    if bad is None and ".." in parts:
        bad = "'..' in its path"
    if bad is None and not parts:
        bad = "an empty name"
    if bad is not None:
        raise ArchiveError(f"{archive}: member {name!r} has {bad}; refusing to extract the archive")
    return PurePosixPath(*parts)


def _plan(
    archive: Path, entries: list[_Entry], extracts: Iterable[Extract], files: int | None
) -> list[tuple[_Entry, PurePosixPath]]:
    """Validate every member (not only the wanted ones) and map the wanted files to paths under root."""
    seen: set[str] = set()
    by_name: dict[str, _Entry] = {}
    for e in entries:
        rel = _safe_name(archive, e.name)
        if e.kind == "link":
            raise ArchiveError(f"{archive}: member {e.name!r} is a link; refusing to extract the archive")
        if e.kind == "special":
            raise ArchiveError(f"{archive}: member {e.name!r} is not a regular file; refusing the archive")
        key = rel.as_posix()
        if key in seen:
            raise ArchiveError(f"{archive}: member {key!r} appears twice; refusing the archive")
        seen.add(key)
        if e.kind == "file":
            by_name[key] = e
    if files is not None and len(by_name) != files:
        raise ArchiveError(
            f"{archive}: holds {len(by_name)} files, expected {files}; it is not the published archive"
        )
    plan: list[tuple[_Entry, PurePosixPath]] = []
    for ex in extracts:
        if ex.is_folder:
            prefix = ex.member
            hits = [(k, e) for k, e in by_name.items() if k.startswith(prefix) and len(k) > len(prefix)]
            plan += [(e, PurePosixPath(ex.dest, k[len(prefix) :])) for k, e in sorted(hits)]
        else:
            exact = by_name.get(ex.member)
            same_name = [
                e for k, e in by_name.items() if PurePosixPath(k).name == PurePosixPath(ex.member).name
            ]
            hits = [exact] if exact is not None else same_name
            if len(hits) > 1:
                raise ArchiveError(f"{archive}: holds {ex.member!r} more than once in different folders")
            plan += [(e, PurePosixPath(ex.dest)) for e in hits]
        if not hits:
            raise ArchiveError(f"{archive}: holds no {ex.member!r}; it is not the expected archive")
    return plan


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clean_stale(root: Path) -> None:
    """Remove temporary folders left by an extraction that was killed (their process is gone)."""
    for d in root.glob(_TMP_PREFIX + "*"):
        m = re.match(re.escape(_TMP_PREFIX) + r"(\d+)-", d.name)
        if d.is_dir() and m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


def _move_into_place(src: Path, dst: Path) -> None:
    """A new folder appears whole (one rename); into an existing one, each file is renamed atomically."""
    if src.is_dir():
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            return
        if not dst.is_dir():
            raise InputError(f"{dst} exists and is not a folder; move it away and run again")
        for child in sorted(src.iterdir()):
            _move_into_place(child, dst / child.name)
        return
    if dst.is_dir():
        raise InputError(f"{dst} is a folder where a file belongs; move it away and run again")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def safe_extract(
    archive: Path,
    root: Path,
    extracts: Iterable[Extract],
    files: int | None = None,
    progress: bool = False,
) -> list[Path]:
    """Extract the wanted members of ``archive`` under ``root``, refusing any unsafe archive.

    Every member is checked first: absolute paths, ``..``, symlinks and hard links, device files
    and duplicate names make the whole archive refused (nothing is written). ``files``, where
    known, must equal the number of file members. Members are written to a temporary folder
    inside ``root`` (same file system) and moved into place only once all of them were read with
    valid checksums, so a corrupt or interrupted archive never leaves a half-extracted folder.
    Returns the destination paths.
    """
    from tqdm import tqdm

    archive, root = Path(archive), Path(root)
    extracts = tuple(extracts)
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    arc = _Archive(archive)
    try:
        plan = _plan(archive, arc.entries, extracts, files)
        _check_space(root, sum(e.size for e, _ in plan), f"extracting {archive.name}")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TMP_PREFIX}{os.getpid()}-"))
        try:
            base = tmp.resolve()
            for entry, rel in tqdm(plan, desc=f"extract {archive.name}", disable=not progress, leave=False):
                out = tmp.joinpath(*rel.parts)
                if not out.resolve().is_relative_to(base):  # belt and braces: names were checked above
                    raise ArchiveError(f"{archive}: member {entry.name!r} escapes the target folder")
                out.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with arc.open(entry) as src, open(out, "xb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                        written += len(block)
                if written != entry.size:
                    raise ArchiveError(f"{archive}: member {entry.name!r} is truncated")
            for ex in extracts:
                _move_into_place(tmp.joinpath(*PurePosixPath(ex.dest).parts), root / ex.dest)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as e:
            raise ArchiveError(f"{archive}: corrupt archive ({e or type(e).__name__})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        arc.close()
    return [root / ex.dest for ex in extracts]


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
        fetched = _install(artefact(name), root, base_url, progress, keep)
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
        if rel is None or rel.parts[0] not in _SPLITS or not _IMAGE_NAME.fullmatch(rel.parts[1]):
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


# --- doctor -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of ``evalsuite doctor``: what, whether it is there, and the command that fetches it."""

    what: str
    ok: bool
    detail: str
    fix: str | None = None  # exact command (None when ok)


def _cmd(*args: str | Path) -> str:
    return "evalsuite " + " ".join(shlex.quote(str(a)) for a in args)


def _present_names(folder: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(folder) if e.is_file()}
    except OSError:
        return set()


def _partial_note(path: Path) -> str:
    part = part_path(path)
    if part.is_file():
        return f"; a partial download ({part.stat().st_size / 1e6:.1f} MB) is resumed by the command"
    return ""


def _doctor_coco(root: Path) -> list[Check]:
    from .data.locate import locate

    fix = _cmd("download", "coco", "--root", root)
    try:
        ann = locate("coco", data_root=root).ann_file
    except EvalsuiteError:
        n = _count_files(root / "val2017")
        return [
            Check("COCO val2017 annotations", False, f"missing under {root}/annotations/", fix),
            Check(
                "COCO val2017 images",
                n >= _EXPECTED_COCO_VAL_IMAGES,
                f"{n:,} of {_EXPECTED_COCO_VAL_IMAGES:,}",
                None if n >= _EXPECTED_COCO_VAL_IMAGES else fix,
            ),
        ]
    checks = [Check("COCO val2017 annotations", True, str(ann))]
    try:
        data, _ = read_json(ann)
        names = {img["file_name"] for img in data["images"]}
    except (EvalsuiteError, KeyError, TypeError) as e:
        return [Check("COCO val2017 annotations", False, f"{ann}: unreadable ({e})", fix)]
    n = len(names & _present_names(root / "val2017"))
    ok = n == len(names)
    checks.append(
        Check("COCO val2017 images", ok, f"{n:,} of {len(names):,} referenced", None if ok else fix)
    )
    return checks


def _doctor_lvis(root: Path) -> list[Check]:
    from .data.locate import locate

    fix = _cmd("download", "lvis", "--root", root, "--images", "needed")
    try:
        ann = locate("lvis", data_root=root).ann_file
    except EvalsuiteError:
        return [
            Check("LVIS v1 val annotations", False, f"missing under {root}/annotations/", fix),
            Check(
                "LVIS v1 val images",
                False,
                f"unknown until the annotations are there "
                f"({_EXPECTED_LVIS_VAL_IMAGES:,} from train2017 + val2017)",
                fix,
            ),
        ]
    try:
        rels = lvis_image_files(ann)
    except EvalsuiteError as e:
        return [Check("LVIS v1 val annotations", False, str(e).splitlines()[0], fix)]
    present = {s: _present_names(root / s) for s in _SPLITS}
    n = sum(1 for r in rels if r.parts[1] in present[r.parts[0]])
    ok = n == len(rels)
    return [
        Check("LVIS v1 val annotations", True, str(ann)),
        Check("LVIS v1 val images", ok, f"{n:,} of {len(rels):,} referenced", None if ok else fix),
    ]


def _doctor_checkpoints() -> list[Check]:
    from .models.checkpoints import CHECKPOINTS, default_path

    checks = []
    no_ultralytics = importlib.util.find_spec("ultralytics") is None
    for model, info in CHECKPOINTS.items():
        path = default_path(model)
        extra = ""
        if info.format == "ultralytics" and no_ultralytics:
            extra = "; FastSAM also needs the optional extra: pip install 'evalsuite[fastsam]'"
        fix = _cmd("download", "weights", model)
        what = f"checkpoint {model}"
        if not path.is_file():
            checks.append(Check(what, False, f"missing: {path}{_partial_note(path)}{extra}", fix))
        elif info.size is not None and path.stat().st_size != info.size:
            size = path.stat().st_size
            checks.append(
                Check(what, False, f"{path}: {size:,} bytes, expected {info.size:,}; delete it{extra}", fix)
            )
        else:
            checks.append(Check(what, True, f"{path} (size checked, SHA-256 at load){extra}"))
    return checks


def _doctor_boxes() -> list[Check]:
    from .boxes import BOX_FILES, default_boxes_path

    checks = []
    for name in BOX_FILES:
        path = default_boxes_path(name)
        ok = path.is_file()
        detail = str(path) if ok else f"missing: {path}{_partial_note(path)}"
        checks.append(Check(f"boxes {name}", ok, detail, None if ok else _cmd("download", "boxes", name)))
    return checks


def doctor(data_root: Path | str | None = None) -> list[Check]:
    """What evalsuite needs and whether it is there, with the exact command that fetches each part.

    Looks where a run would look (``data_root``, else $EVALSUITE_DATA, else ./datasets/coco, and
    the cache ``home()``). Cheap: files are counted and sized, not hashed (SHA-256 is checked
    when files are downloaded and when checkpoints are loaded).
    """
    root = Path(data_root).expanduser() if data_root is not None else default_root()
    return _doctor_coco(root) + _doctor_lvis(root) + _doctor_checkpoints() + _doctor_boxes()
