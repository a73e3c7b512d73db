"""Dataset archives: the catalogue (from the datasets' declarations) and their download (verified,
resumable, extracted safely).

Why: real evaluation needs 1-20 GB of archives from hosts that are easy to get wrong, archives
that could carry hostile member names, and (LVIS) images that live in another dataset's folders.
Every archive is checked against a pinned SHA-256 where its dataset declares one (else the value
seen at the first successful extraction is recorded and checked afterwards), transfers resume, and
extraction goes to a temporary folder inside the root that is moved into place only when complete.
What each dataset fetches, from where, is declared by the dataset (``evalsuite/datasets/*.py``, a
plugin, a user's TOML file): nothing here knows a dataset by name. Per-image files (a dataset's
``image_base_url``, e.g. LVIS's images from COCO's https origin) have no published checksums: they
come only over https, from a URL evalsuite builds from the path the format names, never from a URL
read out of the annotation file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..data.formats import reader_class
from ..data.jsonio import sha256_file
from ..data.locate import default_root, locate
from ..data.registry import datasets, entry_point_datasets, get_dataset
from ..data.spec import DataFile, DatasetSpec
from ..errors import EvalsuiteError, InputError, UnknownNameError, did_you_mean
from .artefact import DOWNLOADED, FIRST_USE, Artefact, TrustStore, expected_sha256, fetch, remember
from .cache import cache_dir
from .extract import ArchiveError, Extract, check_space, safe_extract
from .http import DownloadError, check_url, download, part_path

IMAGE_MODES = ("needed", "archives", "none")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass(frozen=True)
class Archive(Artefact):
    """A published dataset archive: an :class:`Artefact` plus what it extracts to."""

    kind: str = "datasets"
    official_url: str = ""  # as the dataset's site publishes it (may be http: documentation only)
    extracts: tuple[Extract, ...] = ()
    md5: str | None = None  # published MD5, for a check by hand; SHA-256 is what evalsuite checks
    files: int | None = None  # file members in the archive, where known


def archive_of(f: DataFile) -> Archive:
    """The fetchable form of a file a dataset declares."""
    return Archive(
        f.name,
        f.filename,
        f.url,
        sha256=f.sha256,
        size=f.size,
        sha256_source=f.sha256_source,
        official_url=f.official_url,
        extracts=tuple(Extract(member, dest) for member, dest in f.extracts),
        md5=f.md5,
        files=f.files,
    )


def _catalogue(specs: Iterable[DatasetSpec]) -> dict[str, Archive]:
    out: dict[str, Archive] = {}
    for spec in specs:
        for f in spec.all_files:
            out.setdefault(f.name, archive_of(f))
    return out


#: every archive the installed datasets declare, by name (users' datasets join when first asked for)
ARCHIVES: dict[str, Archive] = _catalogue(entry_point_datasets().values())


def archive(name: str) -> Archive:
    """The archive ``name``: an installed dataset's (from :data:`ARCHIVES`), or a user's dataset's."""
    if name in ARCHIVES:
        return ARCHIVES[name]
    users = _catalogue(datasets().values())  # not kept: a user's registration may end
    if name not in users:
        raise UnknownNameError(f"no dataset archive {name!r}.{did_you_mean(name, [*ARCHIVES, *users])}")
    return users[name]


def datasets_dir() -> Path:
    """Where archives are downloaded (and kept with ``keep_archives``): ``home()/datasets``."""
    return cache_dir("datasets")


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


def _install(art: Archive, root: Path, base_url: str | None, progress: bool, keep: bool) -> tuple[bool, bool]:
    """Download, verify and extract ``art`` unless already in place: (fetched now, and the official bytes)."""
    if _in_place(art, root):
        return False, False
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
    return True, official


def _prepare(root: Path | str, base_url: str | None) -> Path:
    if base_url is not None:
        check_url(base_url)  # a mirror gets the same rules as the official hosts: https only
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _install_all(
    names: Iterable[str], root: Path, report: DownloadReport, base_url: str | None, progress: bool, keep: bool
) -> bool:
    """Install each archive; True when every one was fetched now as the official bytes."""
    all_official = True
    for name in names:
        fetched, official = _install(archive(name), root, base_url, progress, keep)
        (report.fetched if fetched else report.present).append(name)
        all_official = all_official and official
    return all_official


def _record_annotations(spec: DatasetSpec, root: Path) -> None:
    """Per-image formats: the annotations just extracted from the official archive(s) are the official
    ones, so their manifest's SHA-256 is recorded (what :func:`~evalsuite.engine.datasets.identify` reads)."""
    ann = root / spec.layouts[0].annotations
    if not ann.is_dir():  # a single annotation file: recorded by _install from the archive's extracts
        return
    reader = locate(spec.name, data_root=root).open()
    TrustStore(datasets_dir()).set(spec.annotation_key, reader.annotation_sha256, DOWNLOADED)


def download_dataset(
    dataset: str | DatasetSpec,
    root: Path | str | None = None,
    images: str = "needed",
    progress: bool = True,
    base_url: str | None = None,
    keep_archives: bool = False,
    workers: int = 8,
    timeout: float = 60,
) -> DownloadReport:
    """Fetch a dataset's declared archives into ``root`` (default: where a run looks) and extract them.

    Parts already in place are skipped; archives are SHA-256 checked, resumable, and deleted after
    extraction unless ``keep_archives``. ``base_url`` replaces the hosts (a mirror holding the same file
    names, or the tests' loopback server). Where a dataset's images can also come one by one
    (``image_base_url``: LVIS), ``images`` says how: ``"needed"`` fetches only the images its annotation
    file references, over https into ``<root>/<path>``, skipping those present, with ``workers`` threads
    (failures are counted, listed in ``datasets_dir()/<annotations>_failed.txt`` and raised as one
    :class:`DownloadError` after all others finished: run again to retry them); ``"archives"`` the
    dataset's image archives; ``"none"`` only the annotations. A dataset behind a licence page
    (``obtain``) is refused with what to do.
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset(dataset)
    if images not in IMAGE_MODES:
        raise InputError(f"--images must be one of {', '.join(IMAGE_MODES)}, not {images!r}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    if not spec.files:
        raise InputError(
            f"{spec.title} cannot be downloaded by evalsuite"
            + (f": {spec.obtain}" if spec.obtain else " (it declares no files)"),
            hint=f"put it under the data root as `evalsuite ls datasets` shows for {spec.name}",
        )
    root = _prepare(root if root is not None else default_root(spec), base_url)
    report = DownloadReport(root=root, annotations=root / spec.layouts[0].annotations)
    if _install_all([f.name for f in spec.files], root, report, base_url, progress, keep_archives):
        _record_annotations(spec, root)
    if images == "archives" and spec.image_archives:
        _install_all([f.name for f in spec.image_archives], root, report, base_url, progress, keep_archives)
    elif images == "needed" and spec.image_base_url:
        _fetch_referenced(spec, root, report, base_url, workers, progress, timeout)
    return report


# --- images one by one -------------------------------------------------------------------------------


def _fetch_referenced(
    spec: DatasetSpec,
    root: Path,
    report: DownloadReport,
    base_url: str | None,
    workers: int,
    progress: bool,
    timeout: float,
) -> None:
    rels = reader_class(spec.format).referenced_images(report.annotations) or []
    todo = [r for r in rels if not root.joinpath(*r.parts).is_file()]
    report.images_needed, report.images_present = len(rels), len(rels) - len(todo)
    base = spec.image_base_url if base_url is None else base_url.rstrip("/")
    label = f"{spec.name.upper()} images"
    report.images_fetched, report.images_failed = _fetch_images(
        todo, root, base, workers, progress, timeout, label
    )
    failures = datasets_dir() / f"{Path(spec.annotation_key).stem}_failed.txt"
    if report.images_failed:
        failures.parent.mkdir(parents=True, exist_ok=True)
        failures.write_text("".join(f"{rel}\t{why}\n" for rel, why in report.images_failed))
        first, why = report.images_failed[0]
        err = DownloadError(
            f"{len(report.images_failed)} of {len(todo)} {label} could not be fetched "
            f"(first: {first}: {why}); the others are in place; list in {failures}; "
            "run the same command again to retry the failed ones"
        )
        err.report = report  # type: ignore[attr-defined]
        raise err
    failures.unlink(missing_ok=True)


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
    rels: list[PurePosixPath], root: Path, base: str, workers: int, progress: bool, timeout: float, label: str
) -> tuple[int, list[tuple[str, str]]]:
    """Fetch ``rels`` with a small thread pool; (number fetched, [(path, reason)] failed)."""
    from tqdm import tqdm

    for folder in {r.parent for r in rels}:
        root.joinpath(*folder.parts).mkdir(parents=True, exist_ok=True)
    fetched = 0
    failed: list[tuple[str, str]] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalsuite-images")
    try:
        with tqdm(total=len(rels), desc=label, unit="img", disable=not progress) as bar:
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
