"""The code location: every asset, job, schedule, sensor and resource.

Loading this module must stay fast (the webserver, the daemon and every run
import it): nothing here imports TensorFlow.
"""

import dagster as dg

from fraud_assets import notify
from fraud_assets.assets import automation, demo_data, iot, monitoring, scoring, training
from fraud_assets.resources import default_resources

defs = dg.Definitions.merge(
    dg.Definitions(resources=default_resources()),
    notify.defs,
    iot.defs,
    demo_data.defs,
    training.defs,
    scoring.defs,
    automation.defs,
    monitoring.defs,
)
