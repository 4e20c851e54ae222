"""Notifiers against real servers on loopback: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from fraud_assets.notify import (
    Notification,
    NotifierResource,
    blocked_transactions_notification,
    make_run_failure_sensor,
    model_promoted_notification,
    notifier_from_env,
)

WEBHOOK_TOKEN = "T000/B000/s3cr3t-webhook-token"
SMTP_USER = "alerts"
SMTP_PASSWORD = "sm7p-pa55word"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """A real HTTP server recording JSON bodies; answers with the queued status codes."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length", 0))
                receiver.paths.append(self.path)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/{WEBHOOK_TOKEN}"


class MailRecorder:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode() == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[MailRecorder, int]]:
    recorder = MailRecorder()
    port = _free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield recorder, port
    controller.stop()


@pytest.fixture
def closed_port_url() -> str:
    port = _free_port()  # bound then closed: connections are refused
    return f"http://127.0.0.1:{port}/services/{WEBHOOK_TOKEN}"


def _email_notifier(port: int, **overrides: object) -> NotifierResource:
    config: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_user": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_starttls": False,
        "email_from": "fraud@example.test",
        "email_to": "oncall@example.test, risk@example.test",
        "retry_backoff_s": 0.01,
    }
    config.update(overrides)
    return NotifierResource(**config)


NOTE = Notification(
    title="Fraud scoring: 3 blocked transactions",
    text="3 of 1200 transactions in hour 2025-03-01-10:00 were blocked.",
    severity="critical",
    fields={"hour": "2025-03-01-10:00", "blocked": 3},
)


def test_webhook_posts_slack_compatible_json(webhook: WebhookReceiver) -> None:
    report = NotifierResource(webhook_url=webhook.url, log_enabled=False).send(NOTE)

    assert report.ok and report.delivered == ["webhook"]
    assert webhook.paths == [f"/services/{WEBHOOK_TOKEN}"]
    body = webhook.bodies[0]
    assert NOTE.title in body["text"]
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds[:2] == ["header", "section"] and kinds[-1] == "context"
    assert body["blocks"][0]["text"]["text"] == NOTE.title
    field_texts = [f["text"] for f in body["blocks"][2]["fields"]]
    assert field_texts == ["*hour*\n2025-03-01-10:00", "*blocked*\n3"]


def test_email_reaches_the_smtp_server_with_login(smtp_server) -> None:
    recorder, port = smtp_server
    report = _email_notifier(port, log_enabled=False).send(NOTE)

    assert report.ok, report.as_metadata()
    mail_from, recipients, content = recorder.messages[0]
    assert mail_from == "fraud@example.test"
    assert recipients == ["oncall@example.test", "risk@example.test"]
    message = message_from_bytes(content)
    assert message["Subject"] == f"[CRITICAL] {NOTE.title}"
    body = message.get_payload(decode=True).decode()
    assert NOTE.text in body and "blocked: 3" in body


def test_all_channels_fan_out_and_log(webhook, smtp_server, caplog) -> None:
    recorder, port = smtp_server
    notifier = _email_notifier(port, webhook_url=webhook.url)
    with caplog.at_level(logging.INFO, logger="fraud_assets.notify"):
        report = notifier.send(NOTE)

    assert report.channels == ["webhook", "email", "log"] and report.ok
    assert len(webhook.bodies) == 1 and len(recorder.messages) == 1
    assert any(NOTE.title in record.getMessage() for record in caplog.records)
    assert report.as_metadata()["notify/email"] == "delivered (1 attempt)"


def test_dead_webhook_does_not_stop_email_and_hides_its_token(closed_port_url, smtp_server) -> None:
    recorder, port = smtp_server
    notifier = _email_notifier(port, webhook_url=closed_port_url, webhook_max_attempts=2)
    report = notifier.send(NOTE)

    assert not report.ok
    assert report.delivered == ["email", "log"]
    assert len(recorder.messages) == 1
    failed = report.result("webhook")
    assert failed.attempts == 2
    assert "Connection refused" in failed.error
    assert WEBHOOK_TOKEN not in failed.error and "s3cr3t" not in failed.error
    assert WEBHOOK_TOKEN not in json.dumps(report.as_metadata())


def test_refused_smtp_login_hides_password_and_webhook_still_delivers(webhook, smtp_server) -> None:
    recorder, port = smtp_server
    notifier = _email_notifier(
        port, webhook_url=webhook.url, smtp_password="wrong-" + SMTP_PASSWORD
    )
    report = notifier.send(NOTE)

    assert report.delivered == ["webhook", "log"]
    failed = report.result("email")
    assert failed.attempts == 1, "a refused login is permanent, not retried"
    assert "SMTPAuthenticationError" in failed.error
    assert SMTP_PASSWORD not in failed.error
    assert recorder.messages == []


def test_closed_smtp_port_reported_without_password(webhook) -> None:
    notifier = _email_notifier(_free_port(), webhook_url=webhook.url, smtp_max_attempts=2)
    report = notifier.send(NOTE)

    failed = report.result("email")
    assert not failed.ok and failed.attempts == 2
    assert SMTP_PASSWORD not in failed.error
    assert report.result("webhook").ok


def test_starttls_required_but_not_offered_refuses_to_send_in_clear(smtp_server) -> None:
    recorder, port = smtp_server
    report = _email_notifier(port, smtp_starttls=True, log_enabled=False).send(NOTE)

    assert not report.ok
    assert "STARTTLS" in report.result("email").error
    assert recorder.messages == []


def test_webhook_retries_server_errors_but_not_client_errors(webhook) -> None:
    notifier = NotifierResource(webhook_url=webhook.url, log_enabled=False, retry_backoff_s=0.01)
    webhook.statuses = [503, 500]
    assert notifier.send(NOTE).result("webhook").attempts == 3
    assert len(webhook.bodies) == 3

    webhook.statuses = [400]
    failed = notifier.send(NOTE).result("webhook")
    assert not failed.ok and failed.attempts == 1 and "HTTP Error 400" in failed.error


def test_default_is_log_only_and_env_switches_channels_on(monkeypatch) -> None:
    for name in ("FRAUD_ALERT_WEBHOOK_URL", "FRAUD_SMTP_HOST", "FRAUD_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert [c.name for c in notifier_from_env().channels()] == ["log"]

    monkeypatch.setenv("FRAUD_ALERT_WEBHOOK_URL", "https://hooks.example.test/services/x")
    monkeypatch.setenv("FRAUD_SMTP_HOST", "smtp.example.test")
    monkeypatch.setenv("FRAUD_SMTP_PORT", "2525")
    monkeypatch.setenv("FRAUD_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("FRAUD_SMTP_STARTTLS", "false")
    monkeypatch.setenv("FRAUD_ALERT_EMAIL_TO", "a@example.test;b@example.test")
    unresolved = notifier_from_env()
    # Secrets stay environment references in the definition (and so in the UI).
    assert isinstance(unresolved.smtp_password, dg.EnvVar)
    assert isinstance(unresolved.webhook_url, dg.EnvVar)

    resolved = unresolved.process_config_and_initialize()
    assert resolved.smtp_port == 2525 and resolved.smtp_starttls is False
    assert resolved.recipients == ["a@example.test", "b@example.test"]
    assert [c.name for c in resolved.channels()] == ["webhook", "email", "log"]


def test_default_resources_include_the_notifier() -> None:
    from fraud_assets.resources import default_resources

    assert isinstance(default_resources()["notifier"], NotifierResource)


def test_notification_builders() -> None:
    blocked = blocked_transactions_notification(
        "2025-03-01-10:00", blocked=2, total=500, flagged=7, examples=[{"tx": "t1", "risk": 91}]
    )
    assert blocked.severity == "critical" and "tx=t1, risk=91" in blocked.text
    assert blocked.fields == {"hour": "2025-03-01-10:00", "blocked": 2, "flagged": 7, "scored": 500}

    promoted = model_promoted_notification(
        "isolation_forest", "v20250302_ab12", "v1", {"f1": 0.81234}
    )
    assert promoted.fields["f1"] == 0.8123 and "replacing v1" in promoted.text
    with pytest.raises(ValueError):
        Notification("t", "x", severity="fatal")  # type: ignore[arg-type]


def test_run_failure_sensor_notifies_job_run_and_error(webhook) -> None:
    @dg.op
    def explode() -> None:
        raise RuntimeError("ClickHouse went away")

    @dg.job
    def nightly_job() -> None:
        explode()

    instance = dg.DagsterInstance.ephemeral()
    result = nightly_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success

    sensor = make_run_failure_sensor(webserver_url="http://dagster.example.test")
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"notifier": NotifierResource(webhook_url=webhook.url, log_enabled=False)},
    ).for_run_failure() as context:
        sensor(context)

    body = webhook.bodies[0]
    assert "nightly_job" in body["text"]
    assert "ClickHouse went away" in body["text"]
    fields = " ".join(f["text"] for f in body["blocks"][2]["fields"])
    assert result.run_id in fields
    assert f"http://dagster.example.test/runs/{result.run_id}" in fields
