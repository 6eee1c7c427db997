"""Locate and verify data files (model weights, sample videos, images) outside the repository.

Weights and videos are never committed to the project. They live in a data directory found
through one setting, ``SHARPEYES_DATA``; without it the project looks beside its checkout
(``../shared``) and then in the user data directory. Every file is checked against the
``SHA256SUMS`` manifest of the directory it was found in, so a truncated download or a
swapped file fails loudly instead of producing silently wrong detections.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

ENV_VAR = "SHARPEYES_DATA"
MANIFEST = "SHA256SUMS"
_CHUNK = 1 << 20


class DataFileError(RuntimeError):
    """A data file is missing or does not match its checksum; the message says how to fix it."""


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_search_path(environ: dict[str, str] | None = None) -> list[Path]:
    """Where data files are looked for, in order.

    With ``SHARPEYES_DATA`` set, only that directory is used: an explicit setting that
    silently fell back to another copy would hide a deployment mistake.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_VAR)
    if explicit:
        return [Path(explicit).expanduser()]
    return [
        _repo_root().parent / "shared",
        Path(platformdirs.user_data_dir("sharpeyes")),
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style manifest into {relative path: hex digest}."""
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        sums[name.strip().lstrip("*")] = digest.lower()
    return sums


@dataclass
class DataFiles:
    """Resolves relative names such as ``models/yolox_nano_416.onnx`` to verified paths."""

    search_path: list[Path] = field(default_factory=default_search_path)
    _verified: dict[Path, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls) -> DataFiles:
        return cls(default_search_path())

    def _describe_search(self) -> str:
        if os.environ.get(ENV_VAR):
            return f"{ENV_VAR}={os.environ[ENV_VAR]}"
        looked = ", ".join(str(p) for p in self.search_path)
        return f"{ENV_VAR} is not set; looked in {looked}"

    def root(self) -> Path:
        """The first existing data directory (for listing what is available)."""
        for candidate in self.search_path:
            if candidate.is_dir():
                return candidate
        raise DataFileError(
            f"No SharpEyes data directory found ({self._describe_search()}). "
            f"Set {ENV_VAR} to the directory that holds models/, videos/ and SHA256SUMS."
        )

    def find(self, name: str) -> Path | None:
        for base in self.search_path:
            candidate = base / name
            if candidate.is_file():
                return candidate
        return None

    def path(self, name: str, *, verify: bool = True) -> Path:
        """Return the verified path of a data file, or raise ``DataFileError`` naming the fix."""
        found = self.find(name)
        if found is None:
            raise DataFileError(
                f"Data file '{name}' was not found ({self._describe_search()}). "
                f"Set {ENV_VAR} to a directory containing '{name}' "
                f"(for example the project's ../shared) or copy the file there."
            )
        if verify:
            self.verify(found, name)
        return found

    def verify(self, path: Path, name: str) -> str:
        """Check ``path`` against the manifest that lists it; returns the digest."""
        resolved = path.resolve()
        if resolved in self._verified:
            return self._verified[resolved]
        expected = self._expected_digest(path, name)
        actual = sha256_of(path)
        if expected is None:
            raise DataFileError(
                f"Data file '{name}' at {path} is not listed in any {MANIFEST} manifest, so it "
                f"cannot be verified. Add its line (sha256sum {name}) to {MANIFEST} in the data "
                f"directory, or use a file that is listed."
            )
        if actual != expected:
            raise DataFileError(
                f"Data file '{name}' at {path} has SHA-256 {actual[:16]}…, but {MANIFEST} expects "
                f"{expected[:16]}…. The file is corrupt or was replaced: restore it from the data "
                f"set ({ENV_VAR} points at the data directory)."
            )
        self._verified[resolved] = actual
        return actual

    def _expected_digest(self, path: Path, name: str) -> str | None:
        """Look for the manifest in the data root, then in each parent folder of the file.

        Large collections (e.g. the Mall frames) carry their own ``*.sha256`` beside the folder.
        """
        root = path
        for _ in Path(name).parts:
            root = root.parent
        root_manifest = root / MANIFEST
        if root_manifest.is_file():
            digest = read_manifest(root_manifest).get(Path(name).as_posix())
            if digest:
                return digest
        folder = path.parent
        sidecar = folder.parent / f"{folder.name}.sha256"
        if sidecar.is_file():
            return read_manifest(sidecar).get(path.name)
        return None
