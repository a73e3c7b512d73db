"""Published detector-box files for the detector-box protocols (e.g. Table 5's ViTDet-H results).

Each dataset declares the detection files published for its protocols (``detections`` of its
declaration; for COCO and LVIS the ViTDet-H files TinySAM publishes, PROTOCOLS.md §4). Nobody
publishes their SHA-256, so the value seen when a downloaded file first passes the structural check
of every detection is recorded and checked afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.detections import check_results_file
from ..data.jsonio import read_json
from ..data.registry import entry_point_datasets
from ..errors import UnknownNameError, did_you_mean
from .artefact import DOWNLOADED, FIRST_USE, Artefact, fetch, remember
from .cache import cache_dir


@dataclass(frozen=True)
class BoxFile(Artefact):
    """A published detection file for one detector-box protocol (``name`` is the protocol)."""

    kind: str = "boxes"
    detector: str = ""
    detections: int | None = None  # entries in the file, where known


#: the published detection files of the installed datasets, by the protocol they prompt
BOX_FILES: dict[str, BoxFile] = {
    f.name: BoxFile(
        f.name, f.filename, f.url, sha256=f.sha256, size=f.size, detector=f.detector, detections=f.detections
    )
    for spec in entry_point_datasets().values()
    for f in spec.detections
}


def box_file(name: str) -> BoxFile:
    if name not in BOX_FILES:
        raise UnknownNameError(f"no published boxes for {name!r}.{did_you_mean(name, list(BOX_FILES))}")
    return BOX_FILES[name]


def boxes_dir() -> Path:
    return cache_dir("boxes")


def default_boxes_path(name: str) -> Path:
    return boxes_dir() / box_file(name).filename


def download_boxes(
    name: str, dest_dir: Path | None = None, progress: bool = True, base_url: str | None = None
) -> Path:
    """Fetch a published detection file (resumable); its SHA-256 is recorded once it parses as a list."""
    info = box_file(name)
    folder = Path(dest_dir) if dest_dir else boxes_dir()
    how = DOWNLOADED if base_url is None and not (folder / info.filename).is_file() else FIRST_USE
    path, sha = fetch(info, folder, base_url, progress)
    data, _ = read_json(path)
    # every entry well formed before the value is trusted (and, from the official URL, all of them)
    check_results_file(data, path, info.detections if base_url is None else None)
    remember(info, sha, folder, how)
    return path
