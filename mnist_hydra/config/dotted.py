"""A config as flat dotted keys (`model.filters`): how a resumed run's config is compared with
the one it saved, and how MLflow records a run's parameters."""


def dotted_keys(tree, prefix: str = "") -> dict:
    """{"a.b": 1} for {"a": {"b": 1}}; lists are values, not branches."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat = {}
    for key, value in tree.items():
        flat.update(dotted_keys(value, f"{prefix}{key}."))
    return flat
