"""The IoT sensor pipeline's logic without Dagster: detection, evaluation, validation, queries."""
