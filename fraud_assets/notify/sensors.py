"""A run-failure sensor that tells people, through the ``notifier`` resource, which run broke."""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg

from fraud_assets.notify.message import run_failure_notification
from fraud_assets.notify.resource import NotifierResource


def failure_text(context: dg.RunFailureSensorContext) -> str:
    """The run's failure message followed by each failed step's error, first lines only."""
    parts = [context.failure_event.message or ""]
    for event in context.get_step_failure_events():
        error = getattr(event.step_failure_data, "error", None)
        while error is not None and error.cause is not None:  # Dagster wraps the user's error
            error = error.cause
        if error is not None:
            first = (error.message or "").strip().splitlines()
            parts.append(f"{event.step_key}: {first[0] if first else error.cls_name}")
    return "\n".join(part for part in parts if part)


def make_run_failure_sensor(
    name: str = "notify_on_run_failure",
    monitored_jobs: Sequence[dg.JobDefinition | dg.UnresolvedAssetJobDefinition] | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    webserver_url: str | None = None,
) -> dg.SensorDefinition:
    """A ``@run_failure_sensor`` sending the job name, run id and error to every channel.

    It runs by default: with the default log-only notifier it costs nothing,
    and alerts that must be switched on are alerts nobody gets. Set
    FRAUD_DAGSTER_URL (or ``webserver_url``) to add a link to the run.
    """

    @dg.run_failure_sensor(
        name=name,
        monitored_jobs=monitored_jobs,
        default_status=default_status,
        description="Notifies (webhook, email, log) when a run fails.",
    )
    def _notify_on_run_failure(
        context: dg.RunFailureSensorContext, notifier: NotifierResource
    ) -> None:
        run = context.dagster_run
        base_url = webserver_url or os.environ.get("FRAUD_DAGSTER_URL")
        run_url = f"{base_url.rstrip('/')}/runs/{run.run_id}" if base_url else None
        notification = run_failure_notification(
            run.job_name, run.run_id, failure_text(context), run_url
        )
        report = notifier.send(notification, logger=context.log)
        context.log.info(
            "run failure of %s notified: %s",
            run.run_id,
            "; ".join(f"{r.channel} {r.describe()}" for r in report.results),
        )

    return _notify_on_run_failure


defs = dg.Definitions(sensors=[make_run_failure_sensor()])
