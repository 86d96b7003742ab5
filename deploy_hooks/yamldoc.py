"""YAML documents that remember where each value came from, for errors that name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]


@dataclass
class Doc:
    """One YAML document: its value, and the line (1-based) of every mapping key and item."""

    value: Any
    source: str
    index: int = 1  # which document of the file
    lines: dict[Path, int] = field(default_factory=dict)

    def where(self, path: Path) -> str:
        """``file line N`` for ``path``, or its nearest parent that has a line."""
        while path and path not in self.lines:
            path = path[:-1]
        line = self.lines.get(path)
        return f"{self.source} line {line}" if line else self.source


class YamlError(ValueError):
    """The text is not YAML; the message names the line."""


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            lines[sub] = key.start_mark.line + 1
            _walk(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines)


def load_all(text: str, source: str) -> list[Doc]:
    """Every non-empty document in ``text`` with its lines; YamlError names the bad line."""
    loader = _Loader(text)
    docs = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            value = loader.construct_document(node)
            if value is None:
                continue
            lines: dict[Path, int] = {(): node.start_mark.line + 1}
            _walk(node, (), lines)
            docs.append(Doc(value, source, index, lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" line {mark.line + 1}" if mark else ""
        raise YamlError(f"{source}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return docs


def load(text: str, source: str) -> Doc:
    """The one document in ``text`` (an empty text is an empty mapping)."""
    docs = load_all(text, source)
    if len(docs) > 1:
        raise YamlError(f"{source}: holds {len(docs)} YAML documents; give one")
    return docs[0] if docs else Doc({}, source)
