"""The city's scope: which kinds of message a 数字城管 centre does not take in, and why (``core/data/scope.toml``,
a city's own file in ``GRIDLINE_SCOPE_FILE`` overriding topics one by one). Handed to nlp as plain data."""

from __future__ import annotations

import tomllib
from pathlib import Path

from nlp.classify import Scope, Topic

DEFAULT_FILE = Path(__file__).parent / "data" / "scope.toml"
FIELDS = frozenset({"name", "reason", "out", "code"})


class ScopeError(ValueError):
    """A scope file that cannot be used; the message names the file, the topic and the field."""


def _topics(path: Path) -> dict[str, dict[str, object]]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScopeError(f"{path}: 无法读取 ({exc})") from None
    topics = doc.get("topic", {})
    if not isinstance(topics, dict):
        raise ScopeError(f"{path}: [topic.名称] 表格式不对")
    return topics


def load_scope(path: str | Path | None = None, codes: frozenset[str] | None = None) -> Scope:
    """The default scope, with a city's file (if given) changing topics; ``codes`` checks a taken-in topic's 事项
    (a topic left out only suggests its code, so a database without the taxonomy yet still starts)."""
    base = _topics(DEFAULT_FILE)
    given = _topics(Path(path)) if path else {}
    topics = {}
    for key in sorted(base.keys() | given.keys()):
        table = {**base.get(key, {}), **given.get(key, {})}
        where = f"{path or DEFAULT_FILE} [topic.{key}]"
        unknown = set(table) - FIELDS
        if unknown:
            raise ScopeError(f"{where}: 未知字段 {', '.join(sorted(unknown))}")
        name, reason, out, code = table.get("name"), table.get("reason"), table.get("out", True), table.get("code")
        if not isinstance(name, str) or not isinstance(reason, str) or not name or not reason:
            raise ScopeError(f"{where}: 需要 name 和 reason")
        if not isinstance(out, bool):
            raise ScopeError(f"{where} out: 应为 true 或 false")
        if code is not None and not isinstance(code, str):
            raise ScopeError(f"{where} code: 应为五位事项代码")
        if not out and code is not None and codes is not None and code not in codes:  # only a taken-in topic's counts
            raise ScopeError(f"{where} code: {code!r} 不在分类代码表中")
        topics[key] = Topic(key, name, reason, out, code)
    return Scope(topics)
