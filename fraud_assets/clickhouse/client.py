"""Open clickhouse-connect clients for a DSN, safely across processes.

The embedded engine (chdb) locks its data directory for the whole process that
opens it: a second process gets ``Error initializing EmbeddedServer``. Dagster
runs its webserver, daemon and every run in separate processes, so embedded
clients are used per unit of work under an inter-process file lock. Waiting
processes queue on the file lock with a timeout and get a clear error if it
expires. Inside one process the client is shared and re-entrant, so nested use
never deadlocks.

Opening the engine costs 0.03-0.2 s (more tables and parts, more time), paid
by every step of a run if each unit of work opened its own. So when a unit
ends, the process keeps the engine open (lingers) until another process asks
for it or ``FRAUD_EMBEDDED_LINGER_S`` (10 s) pass idle. Asking is a shared lock
on a second file that a waiter takes before it sleeps: the holder checks it
when a unit ends and every 50 ms while idle, and then closes the engine,
which releases chdb's lock and the file lock. A process outside this module
cannot ask; for it, set the linger to 0.

A server DSN (``http(s)://``) takes the same path without the lock.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from fraud_assets.clickhouse import errors

DEFAULT_LOCK_TIMEOUT_S = float(os.environ.get("FRAUD_EMBEDDED_LOCK_TIMEOUT_S", "900"))
LINGER_S = float(os.environ.get("FRAUD_EMBEDDED_LINGER_S", "10"))
_POLL_S = 0.05
EXIT_WAIT_S = 10.0  # at exit, how long to wait for a thread that holds an engine


class EmbeddedBusyError(RuntimeError):
    """Another process held the embedded database for longer than the lock timeout."""


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb://")


def embedded_path(dsn: str) -> Path:
    path = dsn[len("chdb://") :]
    if not path.startswith("/"):
        raise ValueError(
            f"embedded ClickHouse DSN must hold an absolute path: chdb:///abs/path, got {dsn!r}"
        )
    return Path(path)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, safe for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _secret_forms(dsn: str) -> set[str]:
    """The DSN's password as it may appear in a message: as written, URL-decoded, and
    inside an HTTP basic-auth header (base64 of ``user:password``) a proxy might echo."""
    parts = urlsplit(dsn)
    if not parts.password:
        return set()
    forms = {parts.password, unquote(parts.password)}
    for user in {parts.username or "", unquote(parts.username or "")}:
        for password in list(forms):
            forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return forms


def _redact_message(message: str, dsn: str) -> str:
    """``message`` without the DSN's password in any of its forms."""
    for form in sorted(_secret_forms(dsn), key=len, reverse=True):
        message = message.replace(form, "***")
    return message


class _Shared:
    """Process-local state of one embedded database: its client, users and file locks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mutex = threading.RLock()
        self.client: Client | None = None
        self.depth = 0
        self.lock_fd: int | None = None
        self.want_fd: int | None = None
        self.idle_since = 0.0

    def open(self, timeout_s: float) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock_fd = _acquire_file_lock(
            _sibling(self.path, "lock"), timeout_s, _sibling(self.path, "want")
        )
        try:
            self.want_fd = os.open(_sibling(self.path, "want"), os.O_RDWR | os.O_CREAT, 0o644)
            self.client = clickhouse_connect.get_client(dsn=f"chdb://{self.path}")
        except Exception:
            self.close()
            raise

    def wanted(self) -> bool:
        """Whether another process waits for the database (it holds the want file shared)."""
        if self.want_fd is None:
            return False
        try:
            fcntl.flock(self.want_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.want_fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        """Close the engine and release the file lock (chdb's own lock goes with the engine)."""
        try:
            if self.client is not None:
                self.client.close()
        finally:
            self.client = None
            if self.want_fd is not None:
                os.close(self.want_fd)
            if self.lock_fd is not None:
                _release_file_lock(self.lock_fd)
            self.want_fd = self.lock_fd = None


_shared: dict[Path, _Shared] = {}
_shared_guard = threading.Lock()
_reaper: threading.Thread | None = None


def _sibling(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{suffix}"


def _close_if_idle(state: _Shared, *, only_if_due: bool) -> None:
    """Close a lingering client; with ``only_if_due``, only if wanted or idle long enough."""
    if not state.mutex.acquire(blocking=False):
        return  # in use by another thread, which checks again when it is done
    try:
        if state.client is None or state.depth:
            return
        if not only_if_due or time.monotonic() - state.idle_since >= LINGER_S or state.wanted():
            state.close()
    finally:
        state.mutex.release()


def _reap_lingering() -> None:
    """Close lingering clients when wanted or idle; exit once none is open."""
    global _reaper
    while True:
        time.sleep(_POLL_S)
        with _shared_guard:
            states = list(_shared.values())
            if all(state.client is None for state in states):
                _reaper = None
                return
        for state in states:
            _close_if_idle(state, only_if_due=True)


def _start_reaper() -> None:
    global _reaper
    with _shared_guard:
        if _reaper is None:
            _reaper = threading.Thread(
                target=_reap_lingering, name="embedded-clickhouse-linger", daemon=True
            )
            _reaper.start()


def _close_idle_clients(keep: Path | None = None) -> None:
    """Close every lingering client but ``keep``'s, skipping any another thread holds."""
    with _shared_guard:
        states = [state for path, state in _shared.items() if path != keep]
    for state in states:
        _close_if_idle(state, only_if_due=False)


def _close_other_engines(keep: Path, timeout_s: float) -> None:
    """Close every other database's engine before ``keep``'s opens: chdb runs one per process.

    Unlike ``_close_idle_clients`` this waits for a thread that holds another
    database (the reaper checking it, or a unit of work using it); skipping it
    would leave its engine open and fail the new one.
    """
    with _shared_guard:
        states = [state for path, state in _shared.items() if path != keep]
    for state in states:
        if not _close_when_free(state, timeout_s):
            raise EmbeddedBusyError(
                f"embedded ClickHouse at {state.path} stayed in use in this process for more "
                f"than {timeout_s:.0f}s; one process opens one embedded database at a time."
            )


def _close_at_exit() -> None:
    """Close every engine before the process exits, waiting for a thread that holds one.

    By then only daemon threads are left: the reaper may be closing an engine
    whose linger just ran out. Skipping it, as the fork hook does, would let
    the process unload its libraries while that engine is still shutting down.
    """
    with _shared_guard:
        states = list(_shared.values())
    for state in states:
        _close_when_free(state, EXIT_WAIT_S)


def _close_when_free(state: _Shared, timeout_s: float) -> bool:
    """Close ``state``'s engine once no other thread holds it; False if one still did."""
    if not state.mutex.acquire(timeout=timeout_s):
        return False
    try:
        if state.client is not None and not state.depth:
            state.close()
    finally:
        state.mutex.release()
    return True


# As before the linger: an idle engine is closed before a fork (chdb cannot serve a forked
# child either way, but the child must not share the file lock) and cleanly at exit.
os.register_at_fork(before=_close_idle_clients)
atexit.register(_close_at_exit)


def _acquire_file_lock(lock_path: Path, timeout_s: float, want_path: Path) -> int:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    want_fd: int | None = None  # held shared while waiting: asks a lingering holder to close
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            except BlockingIOError:
                if want_fd is None:
                    want_fd = os.open(want_path, os.O_RDWR | os.O_CREAT, 0o644)
                    fcntl.flock(want_fd, fcntl.LOCK_SH)
                    continue
                if time.monotonic() >= deadline:
                    holder = lock_path.read_text().strip() or "unknown"
                    os.close(fd)
                    raise EmbeddedBusyError(
                        f"embedded ClickHouse at {lock_path.parent} is busy: process {holder} "
                        f"held it for more than {timeout_s:.0f}s. Wait for it, raise "
                        "FRAUD_EMBEDDED_LOCK_TIMEOUT_S, or point CLICKHOUSE_URL at a ClickHouse "
                        "server for concurrent workloads."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
    finally:
        if want_fd is not None:
            os.close(want_fd)  # releases the shared lock


def _release_file_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _ensure_database(client: Client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    client.database = database


def quote_identifier(name: str) -> str:
    """Backtick-quote an identifier so that any name is taken literally."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@contextlib.contextmanager
def _embedded_client(dsn: str, database: str, timeout_s: float) -> Iterator[Client]:
    path = embedded_path(dsn)
    _close_other_engines(keep=path, timeout_s=timeout_s)
    with _shared_guard:
        state = _shared.setdefault(path, _Shared(path))
    with state.mutex:
        if state.client is None:
            state.open(timeout_s)
        state.depth += 1
        assert state.client is not None
        outer_database = state.client.database
        try:
            _ensure_database(state.client, database)
            yield state.client
        finally:
            state.depth -= 1
            if state.depth and outer_database:
                state.client.database = outer_database
            if state.depth == 0:
                state.idle_since = time.monotonic()
                if LINGER_S <= 0 or state.wanted():
                    state.close()
                else:
                    _start_reaper()


@contextlib.contextmanager
def _server_client(dsn: str, database: str) -> Iterator[Client]:
    try:
        client = clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:  # the driver's message may echo the DSN with its password
        message = (
            f"cannot connect to ClickHouse at {redact_dsn(dsn)}: {_redact_message(str(exc), dsn)}"
        )
        permanent = errors.permanent_or_none(exc, lambda text: _redact_message(text, dsn))
        if permanent is not None:
            raise errors.PermanentClickHouseError(message, code=permanent.code) from None
        raise ConnectionError(message) from None
    try:
        _ensure_database(client, database)
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def connect(dsn: str, database: str, lock_timeout_s: float | None = None) -> Iterator[Client]:
    """A clickhouse-connect client on ``database`` for the duration of the ``with`` block.

    Hold it only for I/O: while it is open, an embedded database is unavailable
    to every other process. A permanent ClickHouse error raised in the block
    (bad SQL, unknown table, no access) leaves it as
    ``errors.PermanentClickHouseError``, which Dagster does not retry.
    """
    try:
        if is_embedded(dsn):
            timeout = DEFAULT_LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
            with _embedded_client(dsn, database, timeout) as client:
                yield client
        else:
            with _server_client(dsn, database) as client:
                yield client
    except Exception as exc:
        # Permanent ClickHouse errors fail a Dagster step without retries (errors.py);
        # a message that would show the password is replaced, not chained.
        text = str(exc)
        redacted = _redact_message(text, dsn)
        permanent = errors.permanent_or_none(exc, lambda message: _redact_message(message, dsn))
        if permanent is not None:
            if redacted != text:
                raise permanent from None
            raise permanent from exc
        if redacted != text and errors.is_clickhouse_error(exc):
            raise ConnectionError(redacted) from None
        raise
