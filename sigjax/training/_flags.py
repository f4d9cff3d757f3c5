"""Command-line config overrides (`--config.section.field=value`): naming an unknown field.

absl and ml_collections report a misspelled override as a bare KeyError ("'nonexistent'"); the
train command line turns it into "unknown config field train.nonexistent (did you mean
train.num_steps?)" with this module.
"""

import difflib
import importlib.util


def _config_fields(path: str) -> list[str]:
    """Dotted names of every field of the config file `path` (`file.py` or `file.py:arg`)."""
    file, _, arg = path.partition(":")
    spec = importlib.util.spec_from_file_location("_sigjax_cli_config", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    return list(walk(config.to_dict(), ""))


def unknown_config_field(argv: list[str]) -> str | None:
    """The message for the first `--config.X` override in `argv` that names no config field.

    Args:
      argv: the command line (program name first), with `--config=FILE` among the arguments.

    Returns:
      "unknown config field X (did you mean Y?)" (the suggestion only when one is close), or
      None when every override names a field or the config file cannot be read.
    """
    path, overrides = None, []
    args = iter(argv[1:])
    for a in args:
        if a == "--config":
            path = next(args, None)
        elif a.startswith("--config="):
            path = a.split("=", 1)[1]
        elif a.startswith("--config."):
            overrides.append(a[len("--config.") :].split("=", 1)[0])
    if not path or not overrides:
        return None
    try:
        fields = _config_fields(path)
    except Exception:  # noqa: BLE001 - the caller reports the original parse error instead.
        return None
    for name in overrides:
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; expected a field of {path}"
            return f"unknown config field {name}{hint}"
    return None
