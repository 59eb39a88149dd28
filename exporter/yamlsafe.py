"""yaml.safe_load without aliases, for the operator's files (--config, --web.config.file).

An alias (*name) lets a few hundred bytes expand into billions of nodes (the "billion laughs"):
safe_load of such a file ran past 30 s and 1.2 GB. The exporter's files never need one, so the
loader refuses the first alias it meets, before anything is expanded. Anchors alone are harmless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class AliasError(yaml.YAMLError):
    """A YAML alias in a file that may not have one; str() is one line naming it and its line."""

    def __init__(self, alias: str, line: int) -> None:
        super().__init__(f"YAML aliases are not accepted (*{alias} at line {line}); write the value out")
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:  # PyYAML's own signature is untyped
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasError(str(event.anchor), event.start_mark.line + 1)
        return super().compose_node(parent, index)


def load(text: str) -> Any:
    """The document in `text`; raises AliasError on an alias, yaml.YAMLError on bad YAML."""
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass: safe


def load_file(path: str, flag: str, error: type[ValueError]) -> Any:
    """The document in the file at `path`, read for `flag`; anything wrong is `error` with one line
    naming the flag, the file and the problem (never a traceback, never the file's content)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{flag}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{flag}: {path} is not UTF-8 text") from None
    try:
        return load(text)
    except AliasError as exc:
        raise error(f"{flag}: {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{flag}: {path} is not valid YAML{where}") from None
