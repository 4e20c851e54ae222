"""Alert notifications: a Slack-compatible webhook, SMTP email and the log, behind one resource.

Use the ``notifier`` resource (``NotifierResource``) and ``send`` a
``Notification``; the returned ``DeliveryReport`` says per channel what was
delivered. ``defs`` holds the run-failure sensor.
"""

from fraud_assets.notify.channels import LogChannel, SmtpChannel, WebhookChannel, slack_payload
from fraud_assets.notify.message import (
    DeliveryReport,
    DeliveryResult,
    Notification,
    blocked_transactions_notification,
    model_promoted_notification,
    run_failure_notification,
)
from fraud_assets.notify.resource import NotifierResource, notifier_from_env
from fraud_assets.notify.sensors import defs, make_run_failure_sensor

__all__ = [
    "DeliveryReport",
    "DeliveryResult",
    "LogChannel",
    "Notification",
    "NotifierResource",
    "SmtpChannel",
    "WebhookChannel",
    "blocked_transactions_notification",
    "defs",
    "make_run_failure_sensor",
    "model_promoted_notification",
    "notifier_from_env",
    "run_failure_notification",
    "slack_payload",
]
