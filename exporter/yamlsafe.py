"""yaml.safe_load without aliases, for the operator's files (--config, --web.config.file).

An alias (*name) lets a few hundred bytes expand into billions of nodes (the "billion laughs"):
safe_load of such a file ran past 30 s and 1.2 GB. The exporter's files never need one, so the
loader refuses the first alias it meets, before anything is expanded. Anchors alone are harmless.
"""

from __future__ import annotations

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
