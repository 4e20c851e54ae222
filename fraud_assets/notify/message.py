"""What a notification says and what became of it, independent of the channel.

Builders for the notifications the graphs send (blocked transactions in an
hour, a failed run, a promoted model) live here so that every channel renders
the same title, text and fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


@dataclass(frozen=True)
class Notification:
    """One message for people: a short title, a text body and key/value fields."""

    title: str
    text: str
    severity: Severity = "info"
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def plain_text(self) -> str:
        """Title, body and fields as plain text (the email body and the log line)."""
        lines = [f"[{self.severity.upper()}] {self.title}", "", self.text]
        if self.fields:
            lines.append("")
            lines.extend(f"{key}: {value}" for key, value in self.fields.items())
        return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one channel: its error text never holds a secret."""

    channel: str
    ok: bool
    attempts: int = 1
    error: str | None = None

    def describe(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return f"delivered ({tries})" if self.ok else f"failed after {tries}: {self.error}"


@dataclass(frozen=True)
class DeliveryReport:
    """Per-channel results of one ``send``; a failed channel never hides the others."""

    notification: Notification
    results: tuple[DeliveryResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def delivered(self) -> list[str]:
        return [result.channel for result in self.results if result.ok]

    @property
    def failed(self) -> list[DeliveryResult]:
        return [result for result in self.results if not result.ok]

    def result(self, channel: str) -> DeliveryResult:
        for result in self.results:
            if result.channel == channel:
                return result
        raise KeyError(f"no channel {channel!r} in this report; channels: {self.channels}")

    @property
    def channels(self) -> list[str]:
        return [result.channel for result in self.results]

    def as_metadata(self) -> dict[str, str]:
        """One entry per channel, for Dagster output or asset-check metadata."""
        return {f"notify/{result.channel}": result.describe() for result in self.results}


def blocked_transactions_notification(
    partition_key: str,
    blocked: int,
    total: int,
    flagged: int = 0,
    examples: Iterable[Mapping[str, Any]] = (),
    max_examples: int = 5,
) -> Notification:
    """The hourly summary sent only when an hour has blocked transactions."""
    example_lines = [
        "• " + ", ".join(f"{key}={value}" for key, value in row.items())
        for row in list(examples)[:max_examples]
    ]
    text = f"{blocked} of {total} transactions in hour {partition_key} were blocked."
    if example_lines:
        text += "\nHighest risk:\n" + "\n".join(example_lines)
    return Notification(
        title=f"Fraud scoring: {blocked} blocked transaction{'s' if blocked != 1 else ''}",
        text=text,
        severity="critical",
        fields={"hour": partition_key, "blocked": blocked, "flagged": flagged, "scored": total},
    )


def run_failure_notification(
    job_name: str, run_id: str, error: str, run_url: str | None = None
) -> Notification:
    fields: dict[str, Any] = {"job": job_name, "run_id": run_id}
    if run_url:
        fields["run"] = run_url
    return Notification(
        title=f"Run failed: {job_name}",
        text=_truncate(error or "the run failed without an error message", 1500),
        severity="critical",
        fields=fields,
    )


def model_promoted_notification(
    model_name: str,
    version: str,
    previous_version: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> Notification:
    replaced = f", replacing {previous_version}" if previous_version else ""
    fields: dict[str, Any] = {"model": model_name, "version": version}
    if previous_version:
        fields["previous_version"] = previous_version
    for key, value in (metrics or {}).items():
        fields[key] = round(value, 4) if isinstance(value, float) else value
    return Notification(
        title=f"Model promoted: {model_name} {version}",
        text=f"{model_name} {version} is now active{replaced}.",
        severity="info",
        fields=fields,
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
