"""Canary releases of model versions: traffic splitting, analysis, promotion and rollback."""
