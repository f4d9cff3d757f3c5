"""`--set section.field=value` overrides of a config, shared by the eval subcommands."""

import ast


def parse_sets(items) -> dict:
    """{"section.field": value} from "section.field=value" strings; values are Python literals
    where they parse as one (numbers, booleans, None), plain strings otherwise."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: got {item!r}, expected section.field=value")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def override(config, overrides: dict) -> None:
    """Sets `section.field` values with ml_collections' own flattened update, types checked.

    Raises:
      ValueError: a field the config does not have, or a value of the wrong type.
    """
    config.lock()  # A misspelled field is an error, not a new field.
    try:
        for key, value in overrides.items():  # One at a time, so an error names its field.
            try:
                config.update_from_flattened_dict({key: value})
            except (AttributeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"--set: got {key}={value!r} ({type(e).__name__}); expected an existing "
                    "field of the config and a value of its type"
                ) from e
    finally:
        config.unlock()
