"""Lineage: data snapshots, and which model and data served each recommendation."""
