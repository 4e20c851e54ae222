"""Measuring detection quality: metrics, the public-data check and the fraud simulation check."""
