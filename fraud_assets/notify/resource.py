"""The ``notifier`` resource: one ``send`` that fans out to every configured channel.

Out of the box only the log channel is on, so a fresh clone needs no
credentials. The webhook and email channels switch on when their settings are
present; ``notifier_from_env`` passes every setting as an ``EnvVar`` so the
webhook URL (its path is its token) and the SMTP password never appear in run
config shown in the UI.
"""

from __future__ import annotations

import logging
import os
import re

import dagster as dg
from pydantic import Field

from fraud_assets.notify.channels import Channel, LogChannel, SmtpChannel, WebhookChannel
from fraud_assets.notify.message import DeliveryReport, DeliveryResult, Notification

log = logging.getLogger(__name__)


class NotifierResource(dg.ConfigurableResource):
    """Alerts through a Slack-compatible webhook, SMTP email and the log."""

    log_enabled: bool = Field(default=True, description="Also write every notification to the log.")
    webhook_url: str | None = Field(
        default=None, description="Slack-compatible incoming-webhook URL (secret: use EnvVar)."
    )
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = Field(default=3, ge=1, le=10)
    retry_backoff_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles.")
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, description="Secret: use EnvVar.")
    smtp_starttls: bool = Field(default=True, description="Upgrade with STARTTLS (or refuse).")
    smtp_ssl: bool = Field(default=False, description="Implicit TLS (usually port 465).")
    smtp_timeout_s: float = 10.0
    smtp_max_attempts: int = Field(default=2, ge=1, le=10)
    email_from: str | None = None
    email_to: str | None = Field(default=None, description="Comma-separated recipients.")

    def channels(self, logger: logging.Logger | None = None) -> list[Channel]:
        channels: list[Channel] = []
        if self.webhook_url:
            channels.append(
                WebhookChannel(
                    self.webhook_url,
                    timeout_s=self.webhook_timeout_s,
                    max_attempts=self.webhook_max_attempts,
                    backoff_s=self.retry_backoff_s,
                )
            )
        if self.smtp_host:
            channels.append(
                SmtpChannel(
                    host=self.smtp_host,
                    port=self.smtp_port,
                    sender=self.email_from or "fraud-assets@localhost",
                    recipients=self.recipients,
                    user=self.smtp_user,
                    password=self.smtp_password,
                    starttls=self.smtp_starttls,
                    use_ssl=self.smtp_ssl,
                    timeout_s=self.smtp_timeout_s,
                    max_attempts=self.smtp_max_attempts,
                    backoff_s=self.retry_backoff_s,
                )
            )
        if self.log_enabled:
            channels.append(LogChannel(logger))
        return channels

    @property
    def recipients(self) -> list[str]:
        return [part.strip() for part in re.split(r"[,;]", self.email_to or "") if part.strip()]

    def send(
        self, notification: Notification, logger: logging.Logger | None = None
    ) -> DeliveryReport:
        """Deliver to every channel; failures are reported per channel, never raised.

        Pass ``context.log`` as ``logger`` so the log channel and the delivery
        outcomes land in the Dagster run log.
        """
        results = []
        sink = logger or log
        for channel in self.channels(logger):
            try:
                result = channel.deliver(notification)
            except Exception as exc:  # channels do not raise; this guards a broken one
                result = DeliveryResult(channel.name, ok=False, error=type(exc).__name__)
            results.append(result)
            if not result.ok:
                sink.warning("notification channel %s %s", result.channel, result.describe())
        return DeliveryReport(notification, tuple(results))


def notifier_from_env() -> NotifierResource:
    """The notifier as configured by FRAUD_ALERT_* and FRAUD_SMTP_* (log only when none is set).

    FRAUD_ALERT_WEBHOOK_URL; FRAUD_SMTP_HOST, FRAUD_SMTP_PORT, FRAUD_SMTP_USER,
    FRAUD_SMTP_PASSWORD, FRAUD_SMTP_STARTTLS (default true), FRAUD_SMTP_SSL;
    FRAUD_ALERT_EMAIL_FROM, FRAUD_ALERT_EMAIL_TO (comma-separated).
    """
    config: dict[str, object] = {}
    strings = {
        "webhook_url": "FRAUD_ALERT_WEBHOOK_URL",
        "smtp_host": "FRAUD_SMTP_HOST",
        "smtp_user": "FRAUD_SMTP_USER",
        "smtp_password": "FRAUD_SMTP_PASSWORD",
        "email_from": "FRAUD_ALERT_EMAIL_FROM",
        "email_to": "FRAUD_ALERT_EMAIL_TO",
    }
    for field_name, env_name in strings.items():
        if os.environ.get(env_name):
            config[field_name] = dg.EnvVar(env_name)
    if os.environ.get("FRAUD_SMTP_PORT"):
        config["smtp_port"] = dg.EnvVar.int("FRAUD_SMTP_PORT")
    for field_name, env_name in (
        ("smtp_starttls", "FRAUD_SMTP_STARTTLS"),
        ("smtp_ssl", "FRAUD_SMTP_SSL"),
    ):
        value = os.environ.get(env_name)
        if value:
            config[field_name] = value.strip().lower() in ("1", "true", "yes", "on")
    return NotifierResource(**config)
