"""Per-modality building blocks: loading, processing, encoding. Of `zoo` it uses only `zoo.registry`."""


class MediaError(ValueError):
    """A media item could not be read or does not fit what the model expects."""


def resolve_path(src, root=None):
    """``src`` as a Path; a relative one resolves against ``root`` (where a dataset keeps its media)."""
    from pathlib import Path

    path = Path(src)
    return Path(root) / path if root is not None and not path.is_absolute() else path
