"""Safe extraction of downloaded archives (zip and tar).

Archives come from the network: a member could name an absolute path, climb out with ``..``, be a
link or a device file. Every member is checked before anything is written, members are written to
a temporary folder inside the target root and moved into place only when all of them were read
whole, so a hostile, corrupt or interrupted archive never leaves a half-extracted folder.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import EvalsuiteError, InputError
from .http import DownloadError

_TMP_PREFIX = ".evalsuite-extract-"


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


def check_space(folder: Path, needed: int, what: str) -> None:
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
            named = [
                (k, e) for k, e in by_name.items() if PurePosixPath(k).name == PurePosixPath(ex.member).name
            ]
            hits = [(ex.member, exact)] if exact is not None else named
            if len(hits) > 1:
                raise ArchiveError(f"{archive}: holds {ex.member!r} more than once in different folders")
            plan += [(e, PurePosixPath(ex.dest)) for _, e in hits]
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
        check_space(root, sum(e.size for e, _ in plan), f"extracting {archive.name}")
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
