"""A small, safe expression language over tap messages, for ``--where`` and ``--template``.

The syntax is Python's expression syntax, parsed with :mod:`ast` and walked by hand into
closures: nothing is ever passed to ``eval``, no Python attribute is ever looked up, and only
the functions listed in ``FUNCTIONS`` can be called. Examples::

    data.price > 100 and headers.region == "eu"
    topic.startswith("orders.") or seq % 1000 == 0
    len(data.items) >= 3 and "gold" in data.tags
    data["odd key"][0] != null

Names: ``FIELDS`` (the message's fields); ``true``, ``false`` and ``null`` as in JSON. ``a.b``
and ``a["b"]`` read key ``b`` of a map; ``a[0]`` reads an element of a list. A key or element
that is not there, or an operation on the wrong types (``"a" < 1``), is never an error: a
comparison that involves one is false, and where a truth value is needed (``and``, ``or``,
``not``, the whole expression) it counts as false. So ``not data.vip`` holds for a message
without ``vip``, and a filter never stops the tap.
"""

from __future__ import annotations

import ast
import fnmatch
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from .events import TapMessage

__all__ = ["FIELDS", "FUNCTIONS", "Expression", "Undefined"]

MAX_LENGTH = 2000
"""Characters an expression may have."""
MAX_NODES = 300
"""Syntax-tree nodes an expression may have: bounds the work per message."""

FIELDS: dict[str, Callable[[TapMessage], Any]] = {
    "time": operator.attrgetter("received"),
    "sent": operator.attrgetter("sent"),
    "node": operator.attrgetter("node"),
    "name": operator.attrgetter("name"),
    "kind": operator.attrgetter("kind"),
    "stream": operator.attrgetter("stream"),
    "service": operator.attrgetter("service"),
    "topic": operator.attrgetter("topic"),
    "seq": operator.attrgetter("seq"),
    "size": operator.attrgetter("size"),
    "headers": operator.attrgetter("headers"),
    "data": operator.attrgetter("data"),
}
_CONSTANTS: dict[str, object] = {"true": True, "false": False, "null": None}


class Undefined(Exception):  # noqa: N818 (a signal inside evaluation, never seen by users)
    """A key, element or value that is not there; the expression is false for this message."""


_FAILS = (Undefined, TypeError, ValueError, ArithmeticError, IndexError, KeyError, RecursionError)


def _number(x: object) -> int | float:
    if isinstance(x, (int, float)):
        return x
    raise TypeError("not a number")


def _text(x: object) -> str:
    if isinstance(x, str):
        return x
    raise TypeError("not a string")


def _length(x: object) -> int:
    if isinstance(x, (str, bytes, list, tuple, Mapping)):
        return len(x)
    raise TypeError("no length")


def _to_int(x: object) -> int:
    if isinstance(x, (int, float, str)):
        return int(x)
    raise TypeError("not convertible")


def _to_float(x: object) -> float:
    if isinstance(x, (int, float, str)):
        return float(x)
    raise TypeError("not convertible")


def _to_str(x: object) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if x is None or isinstance(x, (str, int, float)):
        return str(x)
    raise TypeError("not convertible")


def _numbers(*xs: object) -> list[int | float]:
    if not xs:
        raise TypeError("no values")
    return [_number(x) for x in xs]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "abs": lambda x: abs(_number(x)),
    "round": lambda x: round(_number(x)),
    "min": lambda *xs: min(_numbers(*xs)),
    "max": lambda *xs: max(_numbers(*xs)),
    "startswith": lambda s, p: _text(s).startswith(_text(p)),
    "endswith": lambda s, p: _text(s).endswith(_text(p)),
    "contains": lambda s, p: _text(p) in _text(s),
    "glob": lambda s, p: fnmatch.fnmatchcase(_text(s), _text(p)),
}
"""Functions an expression may call; ``x.startswith(p)`` etc. work as methods on strings too."""
_METHODS = {"startswith", "endswith", "contains", "lower", "upper", "glob"}

Fn = Callable[[TapMessage], Any]


def _get(value: object, key: object) -> object:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        raise Undefined
    if isinstance(value, (list, tuple, str, bytes)) and type(key) is int:
        try:
            return value[key]
        except IndexError:
            raise Undefined from None
    raise Undefined


def _add(a: object, b: object) -> object:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    return _number(a) + _number(b)


_ARITH: dict[type[ast.operator], Callable[[object, object], object]] = {
    ast.Add: _add,
    ast.Sub: lambda a, b: _number(a) - _number(b),
    ast.Mult: lambda a, b: _number(a) * _number(b),
    ast.Div: lambda a, b: _number(a) / _number(b),
    ast.FloorDiv: lambda a, b: _number(a) // _number(b),
    ast.Mod: lambda a, b: _number(a) % _number(b),
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _truth(fn: Fn) -> Callable[[TapMessage], bool]:
    """``fn`` as a truth value: what cannot be evaluated counts as false."""

    def truth(m: TapMessage) -> bool:
        try:
            return bool(fn(m))
        except _FAILS:
            return False

    return truth


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, node: ast.AST, why: str) -> ConfigError:
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        return ConfigError(f"in expression {self.text!r}{where}: {why}")

    def compile(self, node: ast.AST) -> Fn:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is not None and not isinstance(value, (str, bytes, int, float)):
                raise self.error(node, f"{type(value).__name__} literals are not allowed")
            return lambda m: value
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            base, key = self.compile(node.value), node.attr
            return lambda m: _get(base(m), key)
        if isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Slice):
                raise self.error(node, "slices are not allowed")
            base, index = self.compile(node.value), self.compile(node.slice)
            return lambda m: _get(base(m), index(m))
        if isinstance(node, ast.BoolOp):
            parts = [_truth(self.compile(v)) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda m: all(p(m) for p in parts)
            return lambda m: any(p(m) for p in parts)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            op = _ARITH.get(type(node.op))
            if op is None:
                raise self.error(node, f"operator {type(node.op).__name__} is not allowed")
            left, right = self.compile(node.left), self.compile(node.right)
            return lambda m: op(left(m), right(m))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.compile(e) for e in node.elts]
            return lambda m: [f(m) for f in items]
        if isinstance(node, ast.IfExp):
            test, yes = _truth(self.compile(node.test)), self.compile(node.body)
            no = self.compile(node.orelse)
            return lambda m: yes(m) if test(m) else no(m)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.error(node, f"{type(node).__name__} is not allowed in an expression")

    def name(self, node: ast.Name) -> Fn:
        if node.id in FIELDS:
            return FIELDS[node.id]
        if node.id in _CONSTANTS:
            value = _CONSTANTS[node.id]
            return lambda m: value
        raise self.error(node, f"unknown name {node.id!r}; names are {', '.join(FIELDS)} "
                               "(payload fields are data.NAME)")

    def unary(self, node: ast.UnaryOp) -> Fn:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            truth = _truth(operand)
            return lambda m: not truth(m)
        if isinstance(node.op, ast.USub):
            return lambda m: -_number(operand(m))
        if isinstance(node.op, ast.UAdd):
            return lambda m: +_number(operand(m))
        raise self.error(node, f"operator {type(node.op).__name__} is not allowed")

    def compare(self, node: ast.Compare) -> Fn:
        first = self.compile(node.left)
        ops = [_COMPARE[type(op)] for op in node.ops]
        rest = [self.compile(c) for c in node.comparators]

        def run(m: TapMessage) -> bool:
            try:
                left = first(m)
                for op, f in zip(ops, rest, strict=True):
                    right = f(m)
                    if not op(left, right):
                        return False
                    left = right
            except _FAILS:
                return False  # a comparison with something that is not there is false
            return True

        return run

    def call(self, node: ast.Call) -> Fn:
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(node, "calls take plain positional arguments only")
        args = [self.compile(a) for a in node.args]
        if isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            fn = FUNCTIONS[node.func.id]
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            fn = FUNCTIONS[node.func.attr]
            args.insert(0, self.compile(node.func.value))
        else:
            raise self.error(node, f"only these functions may be called: {', '.join(FUNCTIONS)}")
        return lambda m: fn(*(a(m) for a in args))


class Expression:
    """A compiled expression; ``matches(msg)`` for filters, ``value(msg)`` for templates."""

    __slots__ = ("_fn", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("an expression must be a non-empty string")
        if len(text) > MAX_LENGTH:
            raise ConfigError(f"expression is {len(text)} characters, more than {MAX_LENGTH}")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            detail = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
            raise ConfigError(f"expression {text!r} does not parse: {detail}") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise ConfigError(f"expression {text!r} is too complex (over {MAX_NODES} parts)")
        self.text = text
        self._fn = _Compiler(text).compile(tree.body)

    def value(self, msg: TapMessage) -> object:
        """The expression's value for ``msg``; raises Undefined if it has none."""
        try:
            return self._fn(msg)
        except Undefined:
            raise
        except _FAILS as exc:
            raise Undefined from exc

    def matches(self, msg: TapMessage) -> bool:
        """True if the expression holds for ``msg`` (False if it cannot be evaluated)."""
        try:
            return bool(self._fn(msg))
        except _FAILS:
            return False

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"
