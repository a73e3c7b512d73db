"""A run folder on disk: per-item logs appended per image, atomic writes, resume across processes.

A run folder holds ``config.json`` (the settings that determine the result),
a per-item log (``instances.jsonl`` for mIoU protocols, ``detections.jsonl``
for AP protocols: one line per scored instance or predicted mask),
``images.jsonl`` (one line per finished image, written after its items) and,
once complete, ``record.json``. An image counts as finished only when its line
is in ``images.jsonl`` and all its items are present; finished images are written
in small batches (at most a second of work), so a crash at any point loses at most
the batch not yet written, and the next run evaluates it again.

While a run writes a folder, process 0 holds ``run.lock`` (see :class:`FolderLock`): a second run
into the same folder is refused with one line naming the process that holds it.

A hand-damaged ``config.json``, ``record.json`` or log is named in one line with the way to
recover (delete the damaged file, or ``--overwrite``); it never reaches the scorer.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import socket
import tempfile
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..data.jsonio import parse_json
from ..data.masks import compressed_rle_problems
from ..data.values import is_int, short
from ..errors import InputError, ResumeConflictError
from ..identity import resume_problems
from ..record import RECORD_FILE, RunRecord, read_jsonl

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: the lock falls back to checking the PID
    fcntl = None  # type: ignore[assignment]

#: version of the run folder's bookkeeping (config.json, the per-item logs, images.jsonl): resume
#: continues a folder only with the same layout. Independent of the record schema (record.py).
FOLDER_VERSION = 1
CONFIG_FILE = "config.json"
IMAGES_FILE = "images.jsonl"
LOCK_FILE = "run.lock"

_RESTART = "use --overwrite to start the run over (its finished images are discarded), or another --out"


#: the folder locks this process holds, by resolved folder path
_HELD: dict[str, FolderLock] = {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except (OverflowError, ValueError):
        return False
    return True


class FolderLock:
    """``run.lock`` in a run folder: one run at a time writes it.

    The file holds the PID, host and start time of its holder, and the holder keeps an exclusive
    ``flock`` on it, which the kernel drops when the process ends however it ends (SIGKILL
    included): a lock file left by a dead process is stale and is taken over. A live holder on this
    host (the flock is held) or a lock written on another host (whose processes this one cannot
    see) is refused with one line naming it. Where the file system has no ``flock``, a lock whose
    PID is not running on this host is taken as stale. A process that takes a folder it already
    holds (an earlier run from Python that stopped with an error) takes it over.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def _owner(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def _refuse(self, owner: dict[str, Any], why: str) -> None:
        def text(v: object) -> str:
            return v[:80] if isinstance(v, str) else short(v)

        who = f"pid {text(owner.get('pid', '?'))} on host {text(owner.get('host', '?'))}"
        if owner.get("started"):
            who += f", since {text(owner['started'])}"
        raise ResumeConflictError(
            f"{self.folder} is being written by another evalsuite run ({who}){why}",
            hint=f"wait for it to finish, or use another --out; if no run is going, delete {self.path}",
        )

    def acquire(self) -> None:
        key = str(self.folder.resolve())
        if (earlier := _HELD.get(key)) is not None:
            earlier.release()  # this process's own earlier run of the folder, stopped without releasing
        host = socket.gethostname()
        for _ in range(5):
            try:  # never through a symbolic link: the lock must be this folder's own file
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                raise InputError(
                    f"{self.path} is a symbolic link; evalsuite does not follow it",
                    hint=f"delete {self.path} (a run makes its own lock file)",
                ) from None
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        self._refuse(self._owner(), "")
                    except OSError as e:
                        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                            raise
                        self._check_pid(self._owner(), host)  # no flock on this file system
                else:  # pragma: no cover
                    self._check_pid(self._owner(), host)
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:  # released (and unlinked) while we waited for it: take the new one
                    os.close(fd)
                    continue
                owner = self._owner()
                if owner.get("host") not in (None, host):
                    self._refuse(owner, " (on another host, so evalsuite cannot tell whether it still runs)")
                stamp = {
                    "pid": os.getpid(),
                    "host": host,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                }
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(stamp) + "\n").encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            _HELD[key] = self
            return
        self._refuse(self._owner(), " (the lock kept changing hands)")

    def _check_pid(self, owner: dict[str, Any], host: str) -> None:
        pid = owner.get("pid")
        if owner.get("host") == host and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            self._refuse(owner, "")

    def release(self) -> None:
        """Give the folder up (unlink the lock file, then drop the flock); idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
            key = str(self.folder.resolve())
            if _HELD.get(key) is self:
                del _HELD[key]


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        with contextlib.suppress(OSError):
            lock.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would give: mkstemp makes its files 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: finished images are written in batches that grow 1, 2, 4, ... up to this many images
MAX_BATCH_IMAGES = 128
#: ... and never hold more than this many seconds of work (what a SIGKILL can lose, at most)
MAX_BATCH_SECONDS = 1.0


def _dump_lines(rows: list[dict]) -> str:
    """One compact JSON line per row (as ``json.dumps(r, separators=(",", ":"), allow_nan=False)``)."""
    return "".join(_ENCODE(r) + "\n" for r in rows)


class _LogBatch:
    """Finished images not yet on disk: their item lines and their image lines, in order.

    Writing every image as it finishes costs two file opens and writes per image and protocol; a
    batch is written with one write per file. Batches grow 1, 2, 4, ... images (a run shows its first
    finished images at once) up to :data:`MAX_BATCH_IMAGES`, and are written at the latest
    :data:`MAX_BATCH_SECONDS` after the previous write: a killed run loses at most that batch, which the
    next run evaluates again (an image counts as finished only when its line is on disk).
    """

    def __init__(self) -> None:
        self.items: list[str] = []
        self.images: list[str] = []
        self.size = 1
        self.since = time.monotonic()

    def add(self, image_row: dict, rows: list[dict]) -> bool:
        """Queue one finished image; True when the batch is due to be written."""
        self.items.append(_dump_lines(rows))
        self.images.append(_ENCODE(image_row) + "\n")
        return len(self.images) >= self.size or time.monotonic() - self.since >= MAX_BATCH_SECONDS

    def take(self) -> tuple[str, str]:
        items, images = "".join(self.items), "".join(self.images)
        self.items, self.images = [], []
        self.size = min(2 * self.size, MAX_BATCH_IMAGES)
        self.since = time.monotonic()
        return items, images


class RunFolder:
    """One (model, protocol) run on disk, with resume across any number of processes.

    While a run is going, process ``r`` appends to its own part files
    (``<log>.rank<r>.jsonl``, ``images.rank<r>.jsonl``), so processes never share a
    file. :meth:`consolidate` (process 0 only, before and after the run) folds the
    finished images of every part file — whatever world size wrote them — into
    the canonical ``<log>`` and ``images.jsonl`` in image-id order, dropping
    half-written images. A resumed run therefore does not depend on the number of
    processes that started it, and 1 or N processes end with identical files.
    """

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        log_name: str,
        overwrite: bool = False,
        rank: int = 0,
        check_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.log_name = log_name
        self.rank = rank
        self.lock: FolderLock | None = None
        self._batch = _LogBatch()
        config_path = self.path / CONFIG_FILE
        if not check_only:  # process 0 holds the folder while the run goes (the others never write it)
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock = FolderLock(self.path)
            self.lock.acquire()
            weakref.finalize(self, self.lock.release)  # also released when the run drops the folder
        try:
            self._set_up(config_path, config, overwrite, check_only)
        except BaseException:
            self.release()
            raise

    def _set_up(self, config_path: Path, config: dict[str, Any], overwrite: bool, check_only: bool) -> None:
        if config_path.is_file() and not overwrite:
            existing = parse_json(config_path.read_bytes(), config_path, hint=_RESTART)
            if not isinstance(existing, dict):
                raise InputError(
                    f"{config_path}: damaged: a JSON {type(existing).__name__}, not the run's settings",
                    hint=_RESTART,
                )
            finished = (self.path / RECORD_FILE).is_file()  # a finished run's record stands as it is
            if problems := resume_problems(existing, config, finished=finished):
                raise ResumeConflictError(
                    f"{self.path} holds a run of another identity ({'; '.join(problems)})",
                    hint="give this run its own name (--name) or --out, or --overwrite to discard that run",
                )
        elif not check_only:  # process 0 sets the folder up; the others only check it
            for old in self._part_files() + [
                self.path / n for n in (self.log_name, IMAGES_FILE, RECORD_FILE)
            ]:
                old.unlink(missing_ok=True)
            write_json_atomic(config_path, config)

    def release(self) -> None:
        """Let other runs write the folder (process 0; also done when the record is written)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def location(self) -> Path:
        return self.path

    def has_record(self) -> bool:
        return self.record_path.is_file()

    def read_record(self) -> RunRecord:
        """The finished run's record; a damaged one is named with the way to rebuild it."""
        path = self.record_path
        hint = (
            f"delete {path} and re-run the same command: the record is rebuilt from the logs "
            "(nothing is evaluated again); or use --overwrite to start over"
        )
        try:
            data = parse_json(path.read_bytes(), path, hint=hint)
            return RunRecord.from_json(data, path.resolve())
        except InputError as e:
            raise InputError(e.message, hint=hint) from None
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
            raise InputError(
                f"{path}: damaged ({type(e).__name__}: {short(str(e), 120)})", hint=hint
            ) from None

    def _part_files(self) -> list[Path]:
        stem = Path(self.log_name).stem
        return sorted(self.path.glob(f"{stem}.rank*.jsonl")) + sorted(self.path.glob("images.rank*.jsonl"))

    def _rows(self, path: Path, image_lines: bool) -> list[dict]:
        """The rows of one log, each checked for what the bookkeeping reads (named if damaged)."""
        hint = (
            f"delete {path} to evaluate its images again (other finished images are kept), "
            "or use --overwrite to start over"
        )
        try:
            rows = read_jsonl(path)
        except (RecursionError, ValueError) as e:  # beyond what read_jsonl names itself
            raise InputError(f"{path}: damaged ({short(str(e), 120)})", hint=hint) from None
        except InputError as e:
            raise InputError(e.message, hint=hint) from None
        for k, row in enumerate(rows, 1):
            problem = None
            if not isinstance(row, dict):
                problem = f"a JSON {type(row).__name__}, not an object"
            elif not is_int(row.get("image_id")):
                problem = f"image_id {short(row.get('image_id'))} is not an integer"
            elif image_lines and not (
                is_int(row.get("records"))
                and row["records"] >= 0
                and isinstance(row.get("skipped", {}), dict)
                and all(is_int(v) for v in row.get("skipped", {}).values())
            ):
                problem = "records / skipped are not counts"
            if problem:
                raise InputError(f"{path}: entry {k} is damaged ({problem})", hint=hint)
        return rows

    def _read_all(self) -> tuple[dict[int, dict], dict[int, list[dict]]]:
        """Image lines and item rows from the canonical files and every part file."""
        stem = Path(self.log_name).stem
        images: dict[int, dict] = {}
        for f in [self.path / IMAGES_FILE, *sorted(self.path.glob("images.rank*.jsonl"))]:
            for row in self._rows(f, image_lines=True):
                images[int(row["image_id"])] = row
        by_image: dict[int, list[dict]] = {}
        for f in [self.path / self.log_name, *sorted(self.path.glob(f"{stem}.rank*.jsonl"))]:
            rows_of_file: dict[int, list[dict]] = {}
            for row in self._rows(f, image_lines=False):
                rows_of_file.setdefault(int(row["image_id"]), []).append(row)
            for image_id, rows in rows_of_file.items():  # an image is written by one process, in one go
                by_image.setdefault(image_id, rows)
        return images, by_image

    def consolidate(self) -> None:
        """Fold all finished images into the canonical files (image-id order); remove the part files."""
        images, by_image = self._read_all()
        finished = sorted(i for i, row in images.items() if len(by_image.get(i, [])) == row["records"])
        self._rewrite(self.log_name, [r for i in finished for r in by_image.get(i, [])])
        self._rewrite(IMAGES_FILE, [images[i] for i in finished])
        for f in self._part_files():
            f.unlink(missing_ok=True)

    def load_finished(self) -> tuple[dict[int, dict], list[dict]]:
        """Finished images (id -> their line) and their logged items, read from the canonical files."""
        images = {int(row["image_id"]): row for row in self._rows(self.path / IMAGES_FILE, image_lines=True)}
        rows = self._rows(self.path / self.log_name, image_lines=False)
        self._check_masks(rows)
        return images, rows

    def _check_masks(self, rows: list[dict]) -> None:
        """Logged masks (AP protocols' compressed RLEs) are what the evaluator decodes: pycocotools reads
        past a cut string and leaves a short mask's rest uninitialised, so a damaged one is named."""
        at = [k for k, row in enumerate(rows) if "segmentation" in row]
        if not at:
            return
        problems = compressed_rle_problems([rows[k]["segmentation"] for k in at])
        if problems:
            j, problem = next(iter(problems.items()))
            row = rows[at[j]]
            path = self.path / self.log_name
            raise InputError(
                f"{path}: image {short(row.get('image_id'))}: a logged mask is damaged ({problem})"
                + (f"; {len(problems) - 1} more" if len(problems) > 1 else ""),
                hint=f"delete {path} to evaluate its images again, or use --overwrite to start over",
            )

    def _rewrite(self, name: str, rows: list[dict]) -> None:
        path = self.path / name
        try:
            text = _dump_lines(rows)
        except ValueError:  # NaN or infinity: only a hand-edited log holds them
            raise InputError(
                f"{path} (or one of its .rank part files): damaged: a row holds NaN or infinity",
                hint=f"delete {path} and its part files to evaluate their images again, "
                "or use --overwrite to start over",
            ) from None
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def append_image(self, image_row: dict, rows: list[dict]) -> None:
        """Log one finished image into this process's part files (in batches, see :class:`_LogBatch`)."""
        if self._batch.add(image_row, rows):
            self.flush()

    def flush(self) -> None:
        """Write the queued images: all their items first, then their lines (the run's loop calls this
        when it ends, however it ends)."""
        if not self._batch.images:
            return
        items, images = self._batch.take()
        stem = Path(self.log_name).stem
        with open(self.path / f"{stem}.rank{self.rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(items)
            f.flush()
        with open(self.path / f"images.rank{self.rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(images)
            f.flush()

    def write_artifact(self, name: str, content: Any) -> None:
        write_json_atomic(self.path / name, content)

    def write_record(self, record: RunRecord) -> RunRecord:
        """Write ``record.json`` atomically (the run's last write: the folder is released); returns the
        record bound to its file."""
        write_json_atomic(self.record_path, record.to_json())
        self.release()
        return replace(record, path=self.record_path.resolve())


class MemoryRunFolder:
    """The same bookkeeping as :class:`RunFolder`, held in memory: a run from Python that writes nothing."""

    location = None

    def __init__(self, config: dict[str, Any], log_name: str) -> None:
        self.config = config
        self.log_name = log_name
        self._images: dict[int, dict] = {}
        self._rows: list[dict] = []
        self.artifacts: dict[str, Any] = {}

    def consolidate(self) -> None:
        self._rows.sort(key=lambda r: int(r["image_id"]))  # image-id order, as the canonical files

    def load_finished(self) -> tuple[dict[int, dict], list[dict]]:
        return dict(sorted(self._images.items())), list(self._rows)

    def flush(self) -> None:
        """Nothing to write (the same interface as :class:`RunFolder`)."""

    def append_image(self, image_row: dict, rows: list[dict]) -> None:
        self._rows.extend(
            json.loads(json.dumps(rows, allow_nan=False))
        )  # as if written and read back: plain JSON values
        self._images[int(image_row["image_id"])] = image_row

    def has_record(self) -> bool:
        return False

    def read_record(self) -> RunRecord:  # pragma: no cover - has_record() is False
        raise RuntimeError("an in-memory run has no record until it finishes")

    def write_artifact(self, name: str, content: Any) -> None:
        self.artifacts[name] = content

    def write_record(self, record: RunRecord) -> RunRecord:
        return replace(record, items_in_memory=tuple(self._rows))
