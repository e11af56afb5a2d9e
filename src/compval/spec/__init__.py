"""Acceptance spec: models, loading and validation."""
