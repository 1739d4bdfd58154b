"""Data: the one schema (schema.py), typed batches (batches.py), example encoding and batching
(collate.py), public formats (formats.py).

The names below are the public interface that code outside zoo (the benchmarks, a user's script) uses:
read rows in the one schema, encode them for a model's processor, pad them into a batch.
"""

from zoo.data.collate import ExampleEncoder, pad_batch
from zoo.data.formats import read_rows
from zoo.data.schema import DataError

__all__ = ["DataError", "ExampleEncoder", "pad_batch", "read_rows"]
