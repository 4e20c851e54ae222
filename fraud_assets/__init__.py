"""fraud_assets: fraud detection for a crypto exchange as a Dagster asset graph."""
