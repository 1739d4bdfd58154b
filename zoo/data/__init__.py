"""Data: the one schema (schema.py), example encoding and batching (collate.py), public formats."""
