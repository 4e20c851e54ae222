"""The seed's send_alerts branch: an hour with blocked transactions notifies, one without does not.

Deliveries go to a real HTTP server on loopback (the Slack-compatible webhook).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from fraud_assets.assets.scoring import send_alerts
from fraud_assets.notify import NotifierResource
from fraud_assets_tests.test_notify import WebhookReceiver

HOUR = "2026-11-08-02:00"


def _decisions(decisions: list[str]) -> pl.DataFrame:
    n = len(decisions)
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "timestamp": [datetime(2026, 11, 8, 2, i, tzinfo=UTC) for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "amount": [100.0 * (i + 1) for i in range(n)],
            "total_risk_score": [90.0 if d == "blocked" else 10.0 for d in decisions],
            "final_decision": decisions,
            "decision_reasons": [
                ["rule:impossible_travel"] if d == "blocked" else [] for d in decisions
            ],
            "reason_codes": [
                ["impossible travel: 9,855 km from the previous transaction, 20,000 km/h"]
                if d == "blocked"
                else []
                for d in decisions
            ],
        }
    )


def _run(decisions: pl.DataFrame, webhook_url: str) -> dg.MaterializeResult:
    notifier = NotifierResource(webhook_url=webhook_url, log_enabled=True)
    context = dg.build_asset_context(partition_key=HOUR)
    return send_alerts(context, notifier=notifier, ensemble_decision=decisions)


def _receiver() -> WebhookReceiver:
    receiver = WebhookReceiver()
    receiver.thread.start()
    return receiver


def test_blocked_transactions_send_one_summary():
    receiver = _receiver()
    try:
        result = _run(_decisions(["approved", "blocked", "review", "blocked"]), receiver.url)
    finally:
        receiver.server.shutdown()
    assert result.metadata["blocked"] == 2
    assert len(receiver.bodies) == 1
    text = receiver.bodies[0]["text"]
    assert "2 blocked" in text and "t1" in str(receiver.bodies[0])
    assert "why=impossible travel: 9,855 km" in text


def test_an_hour_without_blocks_sends_nothing_and_says_so():
    receiver = _receiver()
    try:
        result = _run(_decisions(["approved", "review", "approved"]), receiver.url)
    finally:
        receiver.server.shutdown()
    assert receiver.bodies == []
    assert result.metadata["blocked"] == 0
    assert "none sent" in str(result.metadata["alert"])
