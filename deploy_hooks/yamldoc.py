"""YAML documents that remember where each value came from, for errors that name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]
MAX_DEPTH = 64  # Kubernetes objects and gate policies nest a dozen levels at most
MAX_VALUES = 200_000  # mapping keys and list items, aliases expanded


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


def _walk(root: yaml.Node, source: str) -> dict[Path, int]:
    """The line of every mapping key and sequence item under ``root``. Aliases are followed,
    so a document whose aliases expand past ``MAX_VALUES`` values (an alias bomb) or that
    nests past ``MAX_DEPTH`` levels is refused rather than walked."""
    lines: dict[Path, int] = {(): root.start_mark.line + 1}
    stack: list[tuple[yaml.Node, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            children = [((*path, str(key.value)), key, value) for key, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            children = [((*path, i), item, item) for i, item in enumerate(node.value)]
        else:
            continue
        if children and len(path) >= MAX_DEPTH:
            raise YamlError(
                f"{source} line {node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} "
                "levels; Onepane reads no deeper"
            )
        for sub, marked, child in children:
            lines[sub] = marked.start_mark.line + 1
            stack.append((child, sub))
        if len(lines) > MAX_VALUES:
            raise YamlError(
                f"{source}: holds more than {MAX_VALUES} values once its aliases are expanded "
                "(an alias bomb?); write the values out or split the file"
            )
    return lines


def _construct(loader: Any, node: yaml.Node, source: str) -> Any:
    """The document's value; a tagged scalar PyYAML cannot convert (``!!int`` with no digits,
    a ``!!timestamp`` that is no date) is a YamlError naming the document's line."""
    try:
        return loader.construct_document(node)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise YamlError(
            f"{source} line {node.start_mark.line + 1}: a value in this document cannot be "
            f"read ({type(exc).__name__}: {str(exc)[:80]}); check its !!tags"
        ) from None


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
            value = _construct(loader, node, source)
            if value is None:
                continue
            docs.append(Doc(value, source, index, _walk(node, source)))
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
