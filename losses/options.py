"""Loss settings come as a config dataclass, keyword overrides, or both; unknown keywords are an error."""

from dataclasses import fields, replace


def configured(cls, config, opts: dict, what: str):
    """`config` (or `cls()`) with `opts` applied; a misspelt option raises instead of being ignored."""
    cfg = config if config is not None else cls()
    if opts:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(opts) - known)
        if bad:
            raise TypeError(f"unknown {what} option(s) {bad}; known: {sorted(known)}")
        cfg = replace(cfg, **opts)
    return cfg
