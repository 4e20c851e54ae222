"""The code version stamped into model versions, read from a checkout's git metadata."""

import subprocess
from pathlib import Path

import pytest

from fraud_assets import settings


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "file.txt").write_text("one\n")
    _git(repo, "add", "file.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    return repo


def _commit_of(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("FRAUD_GIT_COMMIT", raising=False)
    monkeypatch.setattr(settings, "PROJECT_ROOT", root)
    return settings.git_commit.__wrapped__()


def test_a_checkout_on_a_branch(repository: Path, monkeypatch: pytest.MonkeyPatch):
    assert _commit_of(repository, monkeypatch) == _git(repository, "rev-parse", "--short=7", "HEAD")


def test_packed_refs(repository: Path, monkeypatch: pytest.MonkeyPatch):
    _git(repository, "pack-refs", "--all")
    assert not (repository / ".git" / "refs" / "heads" / "main").exists()
    assert _commit_of(repository, monkeypatch) == _git(repository, "rev-parse", "--short=7", "HEAD")


def test_a_worktree_names_its_own_branch_head(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    worktree = tmp_path / "worktree"
    _git(repository, "worktree", "add", "-q", str(worktree), "-b", "other")
    (worktree / "file.txt").write_text("two\n")
    _git(worktree, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "two")
    assert (worktree / ".git").is_file()
    expected = _git(worktree, "rev-parse", "--short=7", "HEAD")
    assert expected != _git(repository, "rev-parse", "--short=7", "HEAD")
    assert _commit_of(worktree, monkeypatch) == expected


def test_a_detached_head_and_no_git_at_all(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _git(repository, "checkout", "-q", "--detach")
    assert _commit_of(repository, monkeypatch) == _git(repository, "rev-parse", "--short=7", "HEAD")
    assert _commit_of(tmp_path / "nowhere", monkeypatch) == "unknown"


def test_the_environment_wins(repository: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(settings, "PROJECT_ROOT", repository)
    monkeypatch.setenv("FRAUD_GIT_COMMIT", "0123456789abcdef")
    assert settings.git_commit.__wrapped__() == "0123456789ab"
