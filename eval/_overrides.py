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


def load_config(spec: str, arg=None):
    """`get_config(arg)` of a config given as a module ("configs.small") or as a file of this
    repository ("configs/study_base.py", relative to the working directory).

    Raises:
      ValueError: a file outside the working directory, or a module without get_config.
    """
    import importlib
    import pathlib

    module = spec
    if spec.endswith(".py"):
        path = pathlib.Path(spec).resolve()
        try:
            rel = path.relative_to(pathlib.Path.cwd().resolve())
        except ValueError:
            raise ValueError(
                f"--config: got {spec!r}, expected a file under the working directory "
                "(the repository root) or a module name"
            ) from None
        module = ".".join(rel.with_suffix("").parts)
    mod = importlib.import_module(module)
    if not hasattr(mod, "get_config"):
        raise ValueError(f"--config: got {spec!r}, expected a module with get_config()")
    return mod.get_config(arg)


def add_grid_flags(parser, names) -> None:
    """The flags shared by grid subcommands (`study`, `stability`): comma-separated lists that
    replace the grid's (`names`, e.g. "attentions"), --shard, --report_only and --set."""
    for name in names:
        parser.add_argument(f"--{name}", default=None, help="comma-separated; replaces the grid's")
    parser.add_argument("--shard", default=None, help="i/n: this process runs every n-th run")
    parser.add_argument("--report_only", action="store_true", help="no training: report records")
    parser.add_argument("--set", action="append", default=[], help="section.field=value override")
