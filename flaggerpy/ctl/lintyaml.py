"""Multi-document YAML with the line of every field, so lint findings point at ``file:line``.

PyYAML composes a node graph that knows where each key and value starts; each document is parsed once that way
and its Python value is built from the same nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from flaggerpy.apis.errors import join_path

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """One YAML document of one file: ``index`` counts from 1 in the file, ``line`` is where it starts."""

    source: str
    index: int
    body: Any
    line: int = 1
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, path: str) -> int:
        """The line of the field ``path`` (a JSON path as in FieldError); a missing field gets its nearest
        written ancestor's line, the document's first line at worst."""
        while path and path != "<root>":
            if path in self.lines:
                return self.lines[path]
            path = parent_path(path)
        return self.line


def parent_path(path: str) -> str:
    """``a.b[2]`` → ``a.b``; ``a.b`` → ``a``; ``a`` → ``""``."""
    if path.endswith("]") and "[" in path:
        return path[: path.rindex("[")]
    return path.rsplit(".", 1)[0] if "." in path else ""


class YamlError(Exception):
    """A syntax error: ``line`` and ``message`` say where and what; the documents before it were read."""

    def __init__(self, line: int, message: str, read: list[Document]) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.read = read


def _index(node: yaml.Node, parts: tuple[str | int, ...], lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            path = (*parts, str(key.value))
            lines.setdefault(join_path(*path), key.start_mark.line + 1)
            _index(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*parts, i)
            lines.setdefault(join_path(*path), item.start_mark.line + 1)
            _index(item, path, lines)


def read_documents(source: str, text: str) -> list[Document]:
    """Every document of ``text`` with its field lines; YamlError at the first syntax error."""
    loader = _LOADER(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            lines: dict[str, int] = {}
            _index(node, (), lines)
            body = loader.construct_document(node)
            docs.append(Document(source, len(docs) + 1, body, node.start_mark.line + 1, lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" (column {mark.column + 1})" if mark else ""
        raise YamlError(mark.line + 1 if mark else 1, f"{problem}{where}", docs) from None
    finally:
        loader.dispose()
    return docs
