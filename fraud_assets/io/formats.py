"""Native file formats for model artifacts, each loaded without executing stored code.

* scikit-learn estimators and scalers: skops. A skops file is a zip of JSON
  and NumPy arrays; loading rebuilds objects only of types on an allowlist, so
  unlike pickle/joblib a tampered file cannot run code. The allowlist here is
  the types under ``sklearn.``, ``numpy.``, ``scipy.`` and ``fraud_assets.``;
  a file that needs anything else, or is not a skops file at all (a pickle),
  is refused. (The model store's checksums guard against corruption; the
  allowlist guards against a file crafted to pass them.)
* Keras models: ``.keras``, loaded with ``safe_mode=True`` (no Python lambdas).
  Keras is imported inside ``load_keras`` only: TensorFlow costs seconds to
  import and code-location loading must stay fast.
"""

from __future__ import annotations

import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "fraud_assets.")


class UntrustedArtifactError(ValueError):
    """An artifact file that would need untrusted code or types to load."""


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def dump_skops(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as a skops file (temp file + rename: never a torn file)."""
    import skops.io as sio

    path = Path(path)
    tmp = _atomic_target(path)
    try:
        sio.dump(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def untrusted_types(path: str | Path) -> list[str]:
    """The types a skops file needs beyond skops' defaults that are not on the allowlist."""
    import skops.io as sio

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise UntrustedArtifactError(
            f"{path} is not a skops file (a pickle or joblib payload?); refusing to load it"
        )
    needed = sio.get_untrusted_types(file=path)
    return [t for t in needed if not t.startswith(TRUSTED_MODULE_PREFIXES)]


def load_skops(path: str | Path) -> Any:
    """Load a skops file, trusting only allowlisted types."""
    import skops.io as sio

    refused = untrusted_types(path)
    if refused:
        raise UntrustedArtifactError(
            f"{path} needs types outside the allowlist {TRUSTED_MODULE_PREFIXES}: {refused}"
        )
    return sio.load(Path(path), trusted=sio.get_untrusted_types(file=Path(path)))


def load_keras(path: str | Path) -> Any:
    """Load a ``.keras`` model with ``safe_mode=True``; imports Keras (and TensorFlow) now."""
    import keras

    return keras.saving.load_model(Path(path), safe_mode=True)
