"""Load YAML keeping where each value came from, so config errors can name file and line.

``yaml.safe_load`` forgets positions; we compose the node tree once, build the plain data
from it, and keep a map from each value's path (``("devices", 3, "kind")``) to its
(file, line). Includes merge the ``devices`` and ``rules`` lists of other files into the
main one; every merged item keeps its own origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Origin", "SourceMap", "YamlSourceError", "load_with_lines"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Origin:
    file: str
    line: int


class YamlSourceError(Exception):
    """The file could not be read or is not valid YAML; ``problem`` is one rendered line."""

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"{file}: {problem}")


@dataclass
class SourceMap:
    """Path → origin, with the nearest known ancestor used for paths that do not exist."""

    lines: dict[Loc, Origin] = field(default_factory=dict)

    def origin(self, loc: Loc) -> Origin | None:
        while True:
            found = self.lines.get(loc)
            if found is not None or not loc:
                return found
            loc = loc[:-1]


def _build(node: yaml.Node, file: str, loc: Loc, out: dict[Loc, Origin]) -> Any:
    out[loc] = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(
                key_node, yaml.ScalarNode) else _scalar(key_node)
            result[key] = _build(value_node, file, (*loc, str(key)), out)
            out[(*loc, str(key))] = Origin(file, key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, file, (*loc, i), out) for i, item in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    # one shared constructor: a scalar needs no state, and making a loader per value cost
    # most of the start-up time of a 2,000-device config
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except ValueError:  # looks like a date (2026-13-01) but is none: the model says where
        return node.value
    finally:
        _CONSTRUCTOR.constructed_objects.clear()
        _CONSTRUCTOR.recursive_objects.clear()


def _compose(path: Path) -> yaml.Node | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlSourceError(str(path), f"cannot read file: {exc.strerror} / 无法读取文件") from exc
    except UnicodeDecodeError as exc:
        raise YamlSourceError(str(path), "file is not UTF-8 text / 文件不是 UTF-8 文本") from exc
    try:
        # libyaml's composer when present (Debian's and PyPI's PyYAML have it): same marks
        return yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise YamlSourceError(
            str(path), f"{where}: invalid YAML: {exc.problem} / YAML 语法错误") from exc
    except yaml.YAMLError as exc:
        raise YamlSourceError(str(path), f"invalid YAML: {exc} / YAML 语法错误") from exc


def load_file(path: Path) -> tuple[Any, dict[Loc, Origin]]:
    node = _compose(path)
    lines: dict[Loc, Origin] = {}
    if node is None:
        return {}, lines
    try:
        return _build(node, str(path), (), lines), lines
    except yaml.MarkedYAMLError as exc:  # e.g. an unknown tag, found while constructing
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise YamlSourceError(
            str(path), f"{where}: invalid YAML: {exc.problem} / YAML 语法错误") from exc
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise YamlSourceError(str(path), f"invalid YAML: {exc} / YAML 语法错误") from exc


MERGED_LISTS = ("devices", "rules")
PACK_PREFIX = "pack:"


def include_path(base: Path, name: str) -> Path:
    """An include relative to the including file, or a shipped rule pack (``pack:elevator``)."""
    if name.startswith(PACK_PREFIX):
        import importlib.resources

        return Path(str(importlib.resources.files("rules").joinpath(
            "packs", f"{name.removeprefix(PACK_PREFIX)}.yaml")))
    return (base.parent / name) if not Path(name).is_absolute() else Path(name)


def load_with_lines(path: Path) -> tuple[Any, SourceMap]:
    """Load ``path`` and its ``include:`` files, merging their ``devices`` and ``rules``."""
    data, lines = load_file(path)
    smap = SourceMap(lines)
    if not isinstance(data, dict):
        return data, smap
    includes = data.get("include") or []
    if not isinstance(includes, list):
        return data, smap  # the model reports the wrong type with its line
    for index, name in enumerate(includes):
        if not isinstance(name, str):
            continue
        inc_path = include_path(path, name)
        if name.startswith(PACK_PREFIX) and not inc_path.exists():
            import difflib

            packs = sorted(p.stem for p in inc_path.parent.glob("*.yaml"))
            guess = difflib.get_close_matches(name.removeprefix(PACK_PREFIX), packs, n=1)
            hint = f" (did you mean 'pack:{guess[0]}'?)" if guess else ""
            origin = smap.origin(("include", index))
            raise YamlSourceError(
                f"{origin.file}:{origin.line}" if origin else str(path),
                f"include[{index}]: unknown rule pack {name!r}{hint}; shipped packs: "
                f"{', '.join(packs)} / 规则包不存在")
        try:
            inc_data, inc_lines = load_file(inc_path)
        except YamlSourceError as exc:
            origin = smap.origin(("include", index))
            raise YamlSourceError(
                f"{origin.file}:{origin.line}" if origin else str(path),
                f"include[{index}]: {exc.problem} ({inc_path})",
            ) from exc
        if not isinstance(inc_data, dict):
            continue
        for key in MERGED_LISTS:
            items = inc_data.get(key)
            if not isinstance(items, list):
                continue
            target = data.setdefault(key, [])
            if not isinstance(target, list):
                continue
            for i, item in enumerate(items):
                new_index = len(target)
                target.append(item)
                prefix = (key, i)
                for sub_loc, origin in inc_lines.items():
                    if sub_loc[:2] == prefix:
                        smap.lines[(key, new_index, *sub_loc[2:])] = origin
    return data, smap
