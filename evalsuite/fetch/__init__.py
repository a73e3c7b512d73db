"""Everything evalsuite fetches from the network, in one room.

One artefact type (:class:`Artefact`: dataset archives, checkpoints, detection files), one verify
routine (published SHA-256 or trust on first use), resumable https download, safe extraction,
the LVIS image fetcher and ``doctor``. The cache root lives in :mod:`evalsuite.fetch.cache`.
"""

from .artefact import (
    DOWNLOADED,
    FIRST_USE,
    Artefact,
    ChecksumError,
    Expected,
    TrustStore,
    expected_sha256,
    fetch,
    is_official,
    remember,
    verify,
)
from .cache import cache_dir, home
from .http import DownloadError, check_url, download, part_path

__all__ = [
    "DOWNLOADED",
    "FIRST_USE",
    "Artefact",
    "ChecksumError",
    "DownloadError",
    "Expected",
    "TrustStore",
    "cache_dir",
    "check_url",
    "download",
    "expected_sha256",
    "fetch",
    "home",
    "is_official",
    "part_path",
    "remember",
    "verify",
]
