"""Reading YAML that a person wrote: plain data only, in bounded time and memory.

``read_yaml(path)`` / ``parse_yaml(text)`` are ``yaml.safe_load`` with more refused: Python and
other tags (only what JSON holds, plus ``<<`` merges), keys given twice, files over
``MAX_RECIPE_BYTES``, documents deeper than ``MAX_DEPTH`` or with more than ``MAX_VALUES``
values once aliases are expanded (alias bombs), integers longer than ``MAX_NUMBER_CHARS``
digits. Each refusal says where (line, column) and why. Used for recipes and for the
``recipe.yaml`` inside a run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError

# Limits of the YAML loader. A real recipe is a few KB, under ten levels deep and a few hundred
# values; these bounds keep a hostile file's cost (time and memory) small without ever getting
# in the way of a real one.
MAX_RECIPE_BYTES = 1_000_000  # file size
MAX_DEPTH = 50  # nested lists and mappings, aliases expanded
MAX_VALUES = 100_000  # values (scalars, lists, mappings) in the document, aliases expanded
MAX_NUMBER_CHARS = 100  # characters of one integer (Python refuses to print > 4300 digits)
_YAML = "tag:yaml.org,2002:"
# The only types a recipe holds: what JSON holds, plus the ``<<`` merge key.
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


class Refused(yaml.MarkedYAMLError):
    """A document the loader refuses before building anything: too large, too deep, or a tag."""


class _LimitError(Refused):
    """Too large, too deep, or too many aliases (``problem`` starts with which one)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for recipes: plain data only, bounded cost, no key given twice.

    * Only plain YAML types are built (strings, numbers, booleans, null, lists, mappings, ``<<``
      merges). Any other tag -- ``!!python/object/apply:...``, ``!!python/name:...``, ``!!binary``,
      ``!!timestamp``, ``!local`` -- is refused when the parser reaches it, before anything is
      built. Unquoted dates (``2024-01-01``) and ``=`` stay strings.
    * Nesting deeper than ``MAX_DEPTH``, more than ``MAX_VALUES`` values once aliases are
      expanded (the "billion laughs" bomb: each alias is counted at its expanded size, in
      constant time), an alias inside the node it names, and integers longer than
      ``MAX_NUMBER_CHARS`` characters are refused as soon as they are seen.
    * A key given twice in one mapping is refused (YAML would keep the second silently).
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _PLAIN_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._aliased = False
        self._sizes: dict = {}  # composed node -> (values, depth), aliases expanded

    def _count(self, values: int, depth: int, mark, alias: str | None = None) -> None:
        self._values += values
        self._aliased = self._aliased or alias is not None
        if depth > MAX_DEPTH:
            via = f" (through alias *{alias})" if alias else ""
            raise _LimitError(
                None,
                None,
                f"too deep: lists and mappings nest more than {MAX_DEPTH} levels{via}; "
                "a recipe needs a handful",
                mark,
            )
        if self._values > MAX_VALUES:
            what, hint = (
                ("too many aliases: expanding them gives", "write the values out, or use fewer")
                if self._aliased
                else ("too large: the document holds", "is this the right file?")
            )
            raise _LimitError(
                None,
                None,
                f"{what} more than {MAX_VALUES} values; a recipe needs a few hundred ({hint})",
                mark,
            )

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # (an undefined alias is the composer's own error)
                if target not in self._sizes:
                    raise _LimitError(
                        None,
                        None,
                        f"too many aliases: *{event.anchor} is used inside the node it names, "
                        "which would repeat without end",
                        event.start_mark,
                    )
                values, depth = self._sizes[target]
                self._count(values, self._depth + depth, event.start_mark, alias=event.anchor)
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _PLAIN_TAGS:
            raise Refused(
                None,
                None,
                f"could not determine a constructor for the tag "
                f"'{tag.replace(_YAML, '!!')}': a recipe holds plain values only (strings, "
                "numbers, true/false, null, lists, mappings), never Python objects; "
                "remove the tag",
                event.start_mark,
            )
        self._depth += 1
        try:
            self._count(1, self._depth, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            children = []
            try:
                node.value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Refused(
                    None,
                    None,
                    f"not text: {node.value[exc.start : exc.end]!r} is half of a UTF-16 "
                    "surrogate pair; write the character itself",
                    node.start_mark,
                ) from None
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = [n for pair in node.value for n in pair]
        sizes = [self._sizes[child] for child in children]
        self._sizes[node] = (
            1 + sum(v for v, _ in sizes),
            1 + max((d for _, d in sizes), default=0),
        )
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            # An explicit tag on text it does not fit: `!!int abc`, `!!bool maybe`, `!!int ''`.
            tag = node.tag.replace(_YAML, "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} cannot be read as {tag}", node.start_mark
            ) from exc

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_NUMBER_CHARS:
            raise _LimitError(
                None,
                None,
                f"too large: an integer written with {len(node.value)} characters (at most "
                f"{MAX_NUMBER_CHARS}); no recipe setting takes one",
                node.start_mark,
            )
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == _YAML + "merge":
                continue  # `<<: *base` -- its keys may be overridden here, that is its point
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice in one mapping (first at line "
                    f"{seen[key] + 1}); the second would silently replace the first",
                    key_node.start_mark,
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (refusals without "not valid YAML")."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (
        f"{where}{problem}" if isinstance(exc, _LimitError) else f"not valid YAML: {where}{problem}"
    )


def parse_yaml(text: str) -> Any:
    """Plain data from YAML text, with ``_UniqueKeyLoader``'s limits; raises ``yaml.YAMLError``."""
    try:
        loader = _UniqueKeyLoader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:  # a control character: it has a position, no line
        line = text.count("\n", 0, exc.position)
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1)
        mark = yaml.Mark("<recipe>", exc.position, line, column, None, None)
        raise yaml.MarkedYAMLError(
            problem=f"character #x{exc.character:04x} is not allowed (a control character); "
            "remove it",
            problem_mark=mark,
        ) from exc
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """Read a recipe file as plain data; a file that cannot be one raises RecipeError.

    Safe on hostile files, in bounded time and memory: files over ``MAX_RECIPE_BYTES`` (1 MB)
    are refused unread ("too large"); nesting deeper than ``MAX_DEPTH`` ("too deep"), more than
    ``MAX_VALUES`` values once aliases are expanded ("too many aliases", the "billion laughs"),
    and any tag other than plain YAML types (``!!python/...``: nothing is constructed, nothing
    runs) are refused as the parser meets them, with the line. See ``_UniqueKeyLoader``.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError([("", "recipe file not found")], file=str(path))
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise RecipeError(
                [
                    (
                        "",
                        f"too large: {path.stat().st_size:,} bytes (at most "
                        f"{MAX_RECIPE_BYTES:,}); a recipe is a few KB -- is this the right file?",
                    )
                ],
                file=str(path),
            )
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        raise RecipeError(
            [
                (
                    "",
                    f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line + 1}, column "
                    f"{column + 1}; save the recipe as UTF-8",
                )
            ],
            file=str(path),
        ) from exc
    except OSError as exc:
        raise RecipeError([("", f"cannot be read ({exc})")], file=str(path)) from exc
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise RecipeError([("", yaml_problem(exc))], file=str(path)) from exc


_UniqueKeyLoader.add_constructor(_YAML + "int", _UniqueKeyLoader.construct_yaml_int)
