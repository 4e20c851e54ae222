"""Model monitoring: drift against training-time references, matured-label performance, A/B statistics.

* ``histograms``: reference bin edges and counts, PSI and binned KS (pure numpy,
  the reference implementation of the SQL).
* ``drift_sql`` / ``drift``: the hour's drift computed by ClickHouse against
  ``drift_reference``, windows and severity levels.
* ``snapshots``: which features are monitored and their hourly copy in
  ``feature_snapshots``.
* ``matured``: precision / recall / FP rate of stored decisions once labels
  have matured, and the consecutive-breach rule that triggers a rollback.
* ``ab_test``: the A/B test's fixed-horizon stopping rule.

The Dagster assets and checks built on these live in ``fraud_assets.assets.monitoring``.
"""
