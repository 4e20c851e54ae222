"""Where things live, read from the environment with zero-configuration defaults.

Every default points inside the project's git-ignored folders so that a fresh
clone runs with no infrastructure: ClickHouse embedded through chdb under
``.data/clickhouse`` and model artifacts under ``.models``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = Path(os.environ.get("FRAUD_SQL_DIR", PROJECT_ROOT / "sql"))
DEFAULT_DATABASE = "analytics"


def data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", PROJECT_ROOT / ".data"))


def clickhouse_url() -> str:
    """The one ClickHouse setting: ``chdb:///abs/path`` (embedded) or ``http(s)://...``."""
    url = os.environ.get("CLICKHOUSE_URL", "").strip()
    return url or f"chdb://{(data_dir() / 'clickhouse').resolve()}"


def clickhouse_database() -> str:
    return os.environ.get("CLICKHOUSE_DATABASE", DEFAULT_DATABASE)


def model_dir() -> Path:
    return Path(os.environ.get("FRAUD_MODEL_DIR", PROJECT_ROOT / ".models"))


def intermediate_dir() -> Path:
    """Scratch storage for the intermediate frames passed between one graph's steps."""
    return Path(os.environ.get("FRAUD_INTERMEDIATE_DIR", data_dir() / "intermediate"))


@functools.cache
def git_commit() -> str:
    """The code version stamped into model versions: env FRAUD_GIT_COMMIT, else git, else 'unknown'."""
    commit = os.environ.get("FRAUD_GIT_COMMIT", "").strip()
    if commit:
        return commit[:12]
    try:
        git_dir = _git_dir(PROJECT_ROOT / ".git")
        ref = (git_dir / "HEAD").read_text().strip()
        if not ref.startswith("ref: "):
            return ref[:7]  # a detached HEAD names its commit
        # A worktree keeps its HEAD in its own folder and the branches in the common one.
        common = git_dir
        if (git_dir / "commondir").exists():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for folder in dict.fromkeys([git_dir, common]):
            ref_path = folder / ref[5:]
            if ref_path.exists():
                return ref_path.read_text().strip()[:7]
        packed = common / "packed-refs"
        for line in packed.read_text().splitlines() if packed.exists() else []:
            if line.endswith(" " + ref[5:]):
                return line.split()[0][:7]
        return "unknown"
    except OSError:
        return "unknown"


def _git_dir(dot_git: Path) -> Path:
    """``.git`` itself, or the folder a worktree's ``.git`` file points to."""
    if dot_git.is_file():
        pointer = dot_git.read_text().strip()
        if pointer.startswith("gitdir: "):
            return (dot_git.parent / pointer[len("gitdir: ") :]).resolve()
    return dot_git
