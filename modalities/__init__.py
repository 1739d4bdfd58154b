"""Per-modality building blocks: loading, processing, encoding. Knows nothing of `zoo`."""


class MediaError(ValueError):
    """A media item could not be read or does not fit what the model expects."""
