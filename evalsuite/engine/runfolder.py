"""A run folder on disk: per-item logs appended per image, atomic writes, resume across processes.

A run folder holds ``config.json`` (the settings that determine the result),
a per-item log (``instances.jsonl`` for mIoU protocols, ``detections.jsonl``
for AP protocols: one line per scored instance or predicted mask),
``images.jsonl`` (one line per finished image, written after its items) and,
once complete, ``record.json``. An image counts as finished only when its line
is in ``images.jsonl`` and all its items are present, so a crash at any point
loses at most the image in flight.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ResumeConflictError
from ..record import RECORD_FILE, RunRecord, read_jsonl, read_record

#: version of the run folder's bookkeeping (config.json, the per-item logs, images.jsonl): resume
#: continues a folder only with the same layout. Independent of the record schema (record.py).
FOLDER_VERSION = 1
CONFIG_FILE = "config.json"
IMAGES_FILE = "images.jsonl"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump_lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in rows)


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
        config_path = self.path / CONFIG_FILE
        if config_path.is_file() and not overwrite:
            existing = json.loads(config_path.read_text(encoding="utf-8"))
            if existing != config:
                diff = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
                raise ResumeConflictError(
                    f"{self.path} holds a run made with different settings ({', '.join(diff)})",
                    hint="use another --out, or --overwrite to discard it",
                )
        elif not check_only:  # process 0 sets the folder up; the others only check it
            self.path.mkdir(parents=True, exist_ok=True)
            for old in self._part_files() + [self.path / n for n in (log_name, IMAGES_FILE, RECORD_FILE)]:
                old.unlink(missing_ok=True)
            write_json_atomic(config_path, config)

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def location(self) -> Path:
        return self.path

    def has_record(self) -> bool:
        return self.record_path.is_file()

    def read_record(self) -> RunRecord:
        return read_record(self.record_path)

    def _part_files(self) -> list[Path]:
        stem = Path(self.log_name).stem
        return sorted(self.path.glob(f"{stem}.rank*.jsonl")) + sorted(self.path.glob("images.rank*.jsonl"))

    def _read_all(self) -> tuple[dict[int, dict], dict[int, list[dict]]]:
        """Image lines and item rows from the canonical files and every part file."""
        stem = Path(self.log_name).stem
        images: dict[int, dict] = {}
        for f in [self.path / IMAGES_FILE, *sorted(self.path.glob("images.rank*.jsonl"))]:
            for row in read_jsonl(f):
                images[int(row["image_id"])] = row
        by_image: dict[int, list[dict]] = {}
        for f in [self.path / self.log_name, *sorted(self.path.glob(f"{stem}.rank*.jsonl"))]:
            rows_of_file: dict[int, list[dict]] = {}
            for row in read_jsonl(f):
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
        images = {int(row["image_id"]): row for row in read_jsonl(self.path / IMAGES_FILE)}
        rows = read_jsonl(self.path / self.log_name)
        return images, rows

    def _rewrite(self, name: str, rows: list[dict]) -> None:
        path = self.path / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(_dump_lines(rows), encoding="utf-8")
        os.replace(tmp, path)

    def append_image(self, image_row: dict, rows: list[dict]) -> None:
        """Log one finished image into this process's part files: its items first, then its line."""
        stem = Path(self.log_name).stem
        with open(self.path / f"{stem}.rank{self.rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(_dump_lines(rows))
            f.flush()
        with open(self.path / f"images.rank{self.rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(_dump_lines([image_row]))
            f.flush()

    def write_artifact(self, name: str, content: Any) -> None:
        write_json_atomic(self.path / name, content)

    def write_record(self, record: RunRecord) -> RunRecord:
        """Write ``record.json`` atomically; returns the record bound to its file."""
        write_json_atomic(self.record_path, record.to_json())
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
