"""The model volume: versioned artifact directories with a verified manifest.

Formats and integrity are separate concerns. An artifact object writes its
own native files (``save(directory)``: ``.keras``, ``.skops``, ``.json``) and
reads them back (classmethod ``load(directory)``); the store wraps that with:

* Layout: ``<root>/<asset>/<partition or "_">/<version>/``, plus
  ``manifest.json`` listing every file's sha256 and size and the class that
  loads the directory. An ``ArtifactRef`` (path relative to the root, and the
  manifest's sha256) names one artifact exactly; the registry stores it.
* Atomic writes: the object saves into a staging directory inside the root
  (same filesystem), the manifest is written and fsynced, then the directory
  is renamed into place. A crash mid-save leaves only staging debris; the
  previous artifact at that path stays complete and loadable. Replacing an
  existing version moves the old directory aside, renames the new one in and
  deletes the old one (a crash between those renames leaves the old one at
  ``<version>.replaced-*``, complete).
* Verified loads: the manifest's sha256 must match the expected one when
  given; every file must exist with the recorded size and sha256, and no
  unlisted file may appear. The loading class must live under
  ``fraud_assets.``, so a manifest cannot make the store import other code.

Objects without ``save``/``load`` are wrapped: dicts and lists as JSON,
scikit-learn estimators as skops (``formats``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
NO_PARTITION = "_"
_STAGING = ".staging"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ModelIntegrityError(RuntimeError):
    """An artifact that is missing, changed, incomplete or not ours: it is not loaded."""


@dataclass(frozen=True)
class ArtifactRef:
    """One stored artifact: its directory relative to the model root and its manifest's sha256."""

    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(path=str(data["path"]), sha256=str(data["sha256"]))


def safe_component(value: str) -> str:
    """A path component from an asset name, partition key or version ('2025-03-02-02:00' → '2025-03-02-02_00')."""
    return _UNSAFE.sub("_", value).strip(".") or "_"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(directory: Path) -> dict[str, Path]:
    return {
        p.relative_to(directory).as_posix(): p
        for p in sorted(directory.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------- wrappers


class JsonArtifact:
    """A JSON document (dict or list) as an artifact: ``data.json``; loads as the plain value."""

    FILE = "data.json"

    def __init__(self, data: Any) -> None:
        self.data = data

    def save(self, directory: Path) -> None:
        text = json.dumps(self.data, indent=1, sort_keys=True, allow_nan=False)
        (Path(directory) / self.FILE).write_text(text)

    @classmethod
    def load(cls, directory: Path) -> Any:
        return json.loads((Path(directory) / cls.FILE).read_text())


class SkopsArtifact:
    """A scikit-learn estimator or scaler as an artifact: ``model.skops``; loads as the estimator."""

    FILE = "model.skops"

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def save(self, directory: Path) -> None:
        from fraud_assets.io.formats import dump_skops

        dump_skops(self.estimator, Path(directory) / self.FILE)

    @classmethod
    def load(cls, directory: Path) -> Any:
        from fraud_assets.io.formats import load_skops

        return load_skops(Path(directory) / cls.FILE)


def as_artifact(obj: Any) -> Any:
    """The object itself if it saves and loads itself, else a wrapper in a native format."""
    if callable(getattr(obj, "save", None)) and callable(getattr(type(obj), "load", None)):
        return obj
    if isinstance(obj, dict | list):
        return JsonArtifact(obj)
    if type(obj).__module__.split(".")[0] == "sklearn" and hasattr(obj, "get_params"):
        return SkopsArtifact(obj)
    raise TypeError(
        f"cannot store a {class_path(obj)} in the model volume: give it save(directory) and a "
        "classmethod load(directory), or pass a dict/list (JSON) or a scikit-learn estimator "
        "(skops)"
    )


# ---------------------------------------------------------------- the store


class ModelStore:
    """Artifacts under one model root (the model volume)."""

    def __init__(
        self, root: str | Path, loader_prefixes: tuple[str, ...] = ("fraud_assets.",)
    ) -> None:
        self.root = Path(root)
        self.loader_prefixes = loader_prefixes

    # -- paths ---------------------------------------------------------------

    def relative_path(self, *, asset: str, version: str, partition: str | None = None) -> str:
        parts = [safe_component(asset), safe_component(partition or NO_PARTITION)]
        return "/".join([*parts, safe_component(version)])

    def resolve(self, ref_or_path: ArtifactRef | str | Path) -> Path:
        """The artifact's directory; relative paths are under the root, absolute ones must be."""
        raw = ref_or_path.path if isinstance(ref_or_path, ArtifactRef) else ref_or_path
        path = Path(raw)
        path = path if path.is_absolute() else self.root / path
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise ModelIntegrityError(f"{raw} is outside the model root {root}; refusing it")
        return resolved

    # -- saving --------------------------------------------------------------

    def save(
        self, obj: Any, *, asset: str, version: str, partition: str | None = None
    ) -> ArtifactRef:
        """Store ``obj`` at ``<asset>/<partition>/<version>``, atomically; return its ref."""
        artifact = as_artifact(obj)
        relative = self.relative_path(asset=asset, version=version, partition=partition)
        final = self.root / relative
        staging = self.root / _STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            artifact.save(staging)
            manifest = self._manifest(staging, artifact, asset, version, partition)
            (staging / MANIFEST).write_bytes(manifest)
            for path in _files(staging).values():
                _fsync(path)
            _fsync(staging)
            self._move_into_place(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ArtifactRef(path=relative, sha256=hashlib.sha256(manifest).hexdigest())

    def save_json(
        self, data: Any, *, asset: str, version: str, partition: str | None = None
    ) -> ArtifactRef:
        return self.save(JsonArtifact(data), asset=asset, version=version, partition=partition)

    @staticmethod
    def _manifest(
        directory: Path, artifact: Any, asset: str, version: str, partition: str | None
    ) -> bytes:
        files = _files(directory)
        if MANIFEST in files:
            raise ValueError(f"{class_path(artifact)}.save wrote a file named {MANIFEST}")
        if not files:
            raise ValueError(f"{class_path(artifact)}.save wrote no files")
        manifest = {
            "format": MANIFEST_FORMAT,
            "class": class_path(artifact),
            "asset": asset,
            "partition": partition,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "files": {
                name: {"sha256": sha256_file(path), "size": path.stat().st_size}
                for name, path in files.items()
            },
        }
        return json.dumps(manifest, indent=1, sort_keys=True).encode()

    @staticmethod
    def _move_into_place(staging: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists():
            old = final.with_name(f"{final.name}.replaced-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
        os.rename(staging, final)
        _fsync(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    # -- loading -------------------------------------------------------------

    def verify(
        self, ref_or_path: ArtifactRef | str | Path, expected_sha256: str | None = None
    ) -> dict[str, Any]:
        """The artifact's manifest, after checking it and every file; raises ModelIntegrityError."""
        if expected_sha256 is None and isinstance(ref_or_path, ArtifactRef):
            expected_sha256 = ref_or_path.sha256
        directory = self.resolve(ref_or_path)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise ModelIntegrityError(
                f"no artifact at {directory}: {MANIFEST} is missing (never written, removed, "
                "or the model volume is not mounted)"
            )
        raw = manifest_path.read_bytes()
        actual = hashlib.sha256(raw).hexdigest()
        if expected_sha256 and actual != expected_sha256:
            raise ModelIntegrityError(
                f"{directory}: manifest sha256 {actual} differs from the recorded "
                f"{expected_sha256}; the artifact was replaced or changed since it was registered"
            )
        try:
            manifest = json.loads(raw)
            listed = manifest["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(f"{manifest_path} is not a valid manifest: {exc}") from None
        present = _files(directory)
        present.pop(MANIFEST, None)
        missing = sorted(set(listed) - set(present))
        extra = sorted(set(present) - set(listed))
        if missing or extra:
            raise ModelIntegrityError(
                f"{directory} does not match its manifest: missing {missing}, unexpected {extra}"
            )
        for name, expected in listed.items():
            path = present[name]
            if path.is_symlink():
                raise ModelIntegrityError(f"{path} is a symlink; artifacts hold plain files only")
            size = path.stat().st_size
            if size != expected["size"] or sha256_file(path) != expected["sha256"]:
                raise ModelIntegrityError(
                    f"{path} was changed since it was stored (sha256 or size differs from the "
                    "manifest)"
                )
        return manifest

    def load(
        self, ref_or_path: ArtifactRef | str | Path, expected_sha256: str | None = None
    ) -> Any:
        """Verify the artifact, then load it with the class its manifest names."""
        manifest = self.verify(ref_or_path, expected_sha256)
        cls = _loader_class(str(manifest.get("class", "")), self.loader_prefixes)
        return cls.load(self.resolve(ref_or_path))


def _loader_class(path: str, prefixes: tuple[str, ...]) -> type:
    if not path.startswith(prefixes) or not re.fullmatch(r"[A-Za-z0-9_.]+", path):
        raise ModelIntegrityError(
            f"manifest names loader class {path!r}; only classes under {', '.join(prefixes)} "
            "may load artifacts"
        )
    # nested classes: import the longest importable module prefix
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute, None)
        if isinstance(target, type) and callable(getattr(target, "load", None)):
            return target
        break
    raise ModelIntegrityError(f"manifest names loader class {path!r}, which cannot be imported")
