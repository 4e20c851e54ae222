"""Delivery channels: a Slack-compatible webhook, SMTP email and the log.

Each channel turns a :class:`Notification` into a :class:`DeliveryResult` and
never raises: a dead webhook must not stop the email. Transient failures
(connection errors, timeouts, HTTP 429/5xx, SMTP 4xx) are retried a bounded
number of times with exponential backoff. Error texts are scrubbed of every
secret the channel knows (the webhook URL carries its token in the path, the
SMTP password) before they leave the channel.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

from fraud_assets.notify.message import DeliveryResult, Notification

_SEVERITY_ICON = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
_SEVERITY_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}

# Slack's documented block limits; longer text is truncated rather than rejected.
_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_FIELD_LIMIT = 2000
_FIELDS_PER_SECTION = 10


class Channel(Protocol):
    name: str

    def deliver(self, notification: Notification) -> DeliveryResult: ...


class _Retryable(Exception):
    """A failure worth another attempt."""


def redact(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every non-empty secret (and its base64 form) replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
        encoded = base64.b64encode(secret.encode()).decode()
        text = text.replace(encoded, "***")
    return text


def _with_retries(
    attempt_once: Callable[[], None],
    max_attempts: int,
    backoff_s: float,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, Exception | None]:
    """Run ``attempt_once`` until it succeeds, fails for good, or attempts run out."""
    attempts = 0
    for attempt in range(1, max(1, max_attempts) + 1):
        attempts = attempt
        try:
            attempt_once()
            return attempts, None
        except _Retryable as exc:
            if attempt == max_attempts:
                return attempts, exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            delay = getattr(exc, "retry_after", None) or backoff_s * 2 ** (attempt - 1)
            sleep(min(delay, max_backoff_s))
        except Exception as exc:  # permanent: bad request, auth refused, bad config
            return attempts, exc
    return attempts, None


def _describe(exc: BaseException) -> str:
    message = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {message}"


def slack_payload(notification: Notification) -> dict[str, Any]:
    """The Slack incoming-webhook body: a plain ``text`` fallback plus Block Kit ``blocks``."""
    icon = _SEVERITY_ICON[notification.severity]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(notification.title, _HEADER_LIMIT)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(notification.text, _SECTION_LIMIT)},
        },
    ]
    items = list(notification.fields.items())
    for start in range(0, len(items), _FIELDS_PER_SECTION):
        chunk = items[start : start + _FIELDS_PER_SECTION]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{key}*\n{value}", _FIELD_LIMIT)}
                    for key, value in chunk
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{icon} severity: {notification.severity}"}],
        }
    )
    return {"text": f"{icon} {notification.title}\n{notification.text}", "blocks": blocks}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class WebhookChannel:
    """POST the Slack-compatible JSON to an incoming-webhook URL (Slack, Mattermost, Teams relays)."""

    url: str
    timeout_s: float = 10.0
    max_attempts: int = 3
    backoff_s: float = 1.0
    name: str = "webhook"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("the alert webhook URL must be http:// or https://")

    @property
    def display_url(self) -> str:
        """Scheme and host only: the path of a Slack webhook URL is its secret."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/…"

    def deliver(self, notification: Notification) -> DeliveryResult:
        body = json.dumps(slack_payload(notification), default=str).encode()

        def attempt_once() -> None:
            request = urllib.request.Request(
                self.url,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (scheme checked)
                    response.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code >= 500:
                    retry = _Retryable(f"HTTP {exc.code}")
                    retry.retry_after = _retry_after(exc.headers.get("Retry-After"))  # type: ignore[attr-defined]
                    raise retry from exc
                raise
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                raise _Retryable(str(exc)) from exc

        attempts, error = _with_retries(
            attempt_once, self.max_attempts, self.backoff_s, sleep=self.sleep
        )
        if error is None:
            return DeliveryResult(self.name, ok=True, attempts=attempts)
        text = f"POST {self.display_url}: {_describe(error)}"
        return DeliveryResult(
            self.name, ok=False, attempts=attempts, error=redact(text, [self.url])
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


@dataclass
class SmtpChannel:
    """Send a plain-text email through an SMTP relay; STARTTLS or implicit TLS optional."""

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    use_ssl: bool = False
    timeout_s: float = 10.0
    max_attempts: int = 2
    backoff_s: float = 1.0
    name: str = "email"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{notification.severity.upper()}] {notification.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="fraud-assets")
        message.set_content(notification.plain_text())
        return message

    def deliver(self, notification: Notification) -> DeliveryResult:
        if not self.recipients:
            return DeliveryResult(self.name, ok=False, attempts=0, error="no recipients configured")
        message = self.message(notification)

        def attempt_once() -> None:
            try:
                self._send(message)
            except smtplib.SMTPResponseException as exc:
                if 400 <= exc.smtp_code < 500:  # temporary: greylisting, rate limits
                    raise _Retryable(str(exc)) from exc
                raise
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
                if isinstance(exc, ssl.SSLError):
                    raise
                raise _Retryable(str(exc)) from exc

        attempts, error = _with_retries(
            attempt_once, self.max_attempts, self.backoff_s, sleep=self.sleep
        )
        if error is None:
            return DeliveryResult(self.name, ok=True, attempts=attempts)
        text = f"SMTP {self.host}:{self.port}: {_describe(error)}"
        return DeliveryResult(
            self.name, ok=False, attempts=attempts, error=redact(text, [self.password])
        )

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            smtp.ehlo()
            if self.starttls and not self.use_ssl:
                # Refuses (SMTPNotSupportedError) rather than sending in clear text.
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


@dataclass
class LogChannel:
    """Write the notification to the Dagster run log when there is one, else the Python log."""

    logger: logging.Logger | None = None
    name: str = "log"

    def deliver(self, notification: Notification) -> DeliveryResult:
        logger = self.logger or logging.getLogger("fraud_assets.notify")
        level = _SEVERITY_LEVEL[notification.severity]
        try:
            text = notification.plain_text().rstrip().replace("\n", " | ")
            logger.log(level, text)  # Dagster's log manager is a logging.Logger too
        except Exception as exc:  # a broken log handler must not stop the other channels
            return DeliveryResult(self.name, ok=False, error=_describe(exc))
        return DeliveryResult(self.name, ok=True)
