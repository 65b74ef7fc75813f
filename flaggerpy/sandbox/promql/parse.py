"""A parser for the subset of PromQL the sandbox evaluates (see ``promql`` for the list).

Anything outside the subset is refused with a :class:`PromQLError` naming the construct and its position, so a
query is either answered as Prometheus would answer it or not at all: never approximated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

MatchOp = Literal["=", "!=", "=~", "!~"]

AGGREGATIONS = frozenset({"sum", "avg", "max", "min", "count"})
# Prometheus aggregations the sandbox does not evaluate: named in the error instead of "unknown".
UNSUPPORTED_AGGREGATIONS = frozenset(
    {"stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio"}
)
SET_OPS = frozenset({"and", "or", "unless"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"})

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
    | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.]))
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


class PromQLError(ValueError):
    """A query the sandbox cannot evaluate; ``kind`` is Prometheus's errorType (``bad_data`` or ``execution``)."""

    def __init__(self, message: str, kind: str = "bad_data") -> None:
        super().__init__(message)
        self.kind = kind


# -- syntax tree ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """One label matcher; regular expressions are anchored at both ends, as in Prometheus."""

    name: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, value: str) -> bool:
        """Whether a label value (empty when the label is absent) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(value) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class NumberLiteral:
    """A number; evaluates to a scalar."""

    value: float


@dataclass(frozen=True)
class VectorSelector:
    """``name{matchers}``: the latest sample of every matching series."""

    matchers: tuple[Matcher, ...]
    offset: float = 0.0


@dataclass(frozen=True)
class MatrixSelector:
    """``selector[range]``: every sample of every matching series within the range."""

    selector: VectorSelector
    range: float


@dataclass(frozen=True)
class Call:
    """A function call."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Aggregation:
    """``op by|without (labels) (expr)``."""

    op: str
    expr: Expr
    labels: tuple[str, ...] = ()
    without: bool = False


@dataclass(frozen=True)
class VectorMatching:
    """How a binary operation between two vectors pairs their elements (one-to-one only)."""

    on: bool = False
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Binary:
    """``lhs op rhs``; ``bool`` turns a comparison filter into 0/1 values."""

    op: str
    lhs: Expr
    rhs: Expr
    matching: VectorMatching = field(default_factory=VectorMatching)
    return_bool: bool = False


@dataclass(frozen=True)
class Unary:
    """``-expr`` (``+expr`` is parsed away)."""

    expr: Expr


Expr = NumberLiteral | VectorSelector | MatrixSelector | Call | Aggregation | Binary | Unary


# -- lexer ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A lexical token and its offset in the query."""

    kind: str
    text: str
    pos: int


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens; PromQLError on a character that starts no token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise PromQLError(f"{_where(query, pos)}: parse error: unexpected character {query[pos]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", len(query)))
    return tokens


def _where(query: str, pos: int) -> str:
    """Prometheus's ``line:column`` position prefix (1-based)."""
    line = query.count("\n", 0, pos) + 1
    column = pos - (query.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{column}"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``30s``, ``5m`` or ``1h30m``; ValueError when malformed."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _unquote(text: str) -> str:
    if text[0] == "`":
        return text[1:-1]
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ValueError(f"unknown escape sequence \\{nxt}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _number(text: str) -> float:
    lowered = text.lower()
    if lowered.startswith("0x"):
        return float(int(lowered, 16))
    return float(text)


# -- parser -----------------------------------------------------------------------------------------------------

# Binary operator precedence, loosest first; "^" is right-associative.
_PRECEDENCE: tuple[frozenset[str], ...] = (
    frozenset({"or"}),
    frozenset({"and", "unless"}),
    COMPARISONS,
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%", "atan2"}),
    frozenset({"^"}),
)


class Parser:
    """Recursive descent over the token list; one instance per query."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.index = 0

    # token helpers

    @property
    def token(self) -> Token:
        """The current token."""
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            # The end-of-input token stays current, so a truncated query fails with "unexpected end of input".
            self.index += 1
        return token

    def _is(self, text: str) -> bool:
        token = self.token
        if token.kind == "ident":
            # Keywords are case-insensitive in PromQL (BY, Without, OFFSET...).
            return token.text.lower() == text
        return token.kind == "op" and token.text == text

    def _expect(self, text: str, context: str) -> Token:
        if not self._is(text):
            self._fail(f"unexpected {self._describe(self.token)} in {context}, expected \"{text}\"")
        return self._advance()

    def _describe(self, token: Token) -> str:
        if token.kind == "eof":
            return "end of input"
        return f"{token.kind if token.kind != 'op' else 'character'} {token.text!r}"

    def _fail(self, problem: str, pos: int | None = None) -> None:
        where = _where(self.query, self.token.pos if pos is None else pos)
        raise PromQLError(f"{where}: parse error: {problem}")

    # grammar

    def parse(self) -> Expr:
        """The whole query as one expression."""
        if self.token.kind == "eof":
            self._fail("no expression found in input")
        expr = self._binary(0)
        if self.token.kind != "eof":
            self._fail(f"unexpected {self._describe(self.token)}")
        return expr

    def _binary_op(self, level: int) -> str | None:
        token = self.token
        if token.kind in ("op", "ident") and token.text.lower() in _PRECEDENCE[level]:
            return token.text.lower()
        return None

    def _binary(self, level: int) -> Expr:
        if level == len(_PRECEDENCE):
            return self._unary()
        lhs = self._binary(level + 1)
        while (op := self._binary_op(level)) is not None:
            op_token = self._advance()
            if op == "atan2":
                self._fail("binary operator atan2 is not supported by the sandbox", op_token.pos)
            return_bool = False
            if self._is("bool"):
                if op not in COMPARISONS:
                    self._fail("bool modifier can only be used on comparison operators")
                self._advance()
                return_bool = True
            matching = self._matching()
            # "^" binds right to left: 2 ^ 3 ^ 2 is 2 ^ 9.
            rhs = self._binary(level if op == "^" else level + 1)
            lhs = Binary(op, lhs, rhs, matching, return_bool)
            self._check_binary(lhs, op_token.pos)
        return lhs

    def _matching(self) -> VectorMatching:
        if not (self._is("on") or self._is("ignoring")):
            if self._is("group_left") or self._is("group_right"):
                self._fail(f"{self.token.text} needs on() or ignoring() before it")
            return VectorMatching()
        on = self._advance().text.lower() == "on"
        labels = self._label_list("on" if on else "ignoring")
        if self._is("group_left") or self._is("group_right"):
            self._fail(f"{self.token.text} (many-to-one matching) is not supported by the sandbox")
        return VectorMatching(on, labels)

    def _check_binary(self, expr: Binary, pos: int) -> None:
        scalar_lhs, scalar_rhs = is_scalar(expr.lhs), is_scalar(expr.rhs)
        if expr.op in SET_OPS and (scalar_lhs or scalar_rhs):
            self._fail(f"set operator \"{expr.op}\" not allowed in binary scalar expression", pos)
        if expr.op in COMPARISONS and scalar_lhs and scalar_rhs and not expr.return_bool:
            self._fail("comparisons between scalars must use BOOL modifier", pos)
        if (expr.matching.on or expr.matching.labels) and (scalar_lhs or scalar_rhs):
            self._fail("vector matching only allowed between instant vectors", pos)
        for side in (expr.lhs, expr.rhs):
            if isinstance(side, MatrixSelector):
                self._fail("binary expression must contain only scalar and instant vector types", pos)

    def _unary(self) -> Expr:
        if self._is("-") or self._is("+"):
            sign = self._advance().text
            # Unary minus binds looser than "^" (-2 ^ 2 is -4), like Prometheus.
            operand = self._binary(len(_PRECEDENCE) - 1)
            if isinstance(operand, MatrixSelector):
                self._fail("unary expression only allowed on expressions of type scalar or instant vector")
            if sign == "+":
                return operand
            if isinstance(operand, NumberLiteral):
                return NumberLiteral(-operand.value)
            return Unary(operand)
        return self._postfix(self._primary())

    def _postfix(self, expr: Expr) -> Expr:
        while True:
            if self._is("["):
                expr = self._range(expr)
            elif self._is("offset"):
                expr = self._offset(expr)
            elif self._is("@"):
                self._fail("the @ modifier is not supported by the sandbox")
            else:
                return expr

    def _range(self, expr: Expr) -> Expr:
        start = self._advance()
        if not isinstance(expr, VectorSelector):
            self._fail("ranges only allowed for vector selectors (subqueries are not supported by the sandbox)",
                       start.pos)
        assert isinstance(expr, VectorSelector)
        if expr.offset:
            self._fail("offset must follow the range selector, as in metric[5m] offset 1m", start.pos)
        token = self._advance()
        if token.kind not in ("duration", "number") or self._is(":"):
            self._fail("subqueries are not supported by the sandbox" if self._is(":")
                       else f"unexpected {self._describe(token)} in range selector, expected a duration", token.pos)
        seconds = self._duration_value(token)
        if self._is(":") or self.token.text.startswith(":"):
            self._fail("subqueries are not supported by the sandbox")
        self._expect("]", "range selector")
        return MatrixSelector(expr, seconds)

    def _offset(self, expr: Expr) -> Expr:
        self._advance()
        negative = False
        if self._is("-"):
            self._advance()
            negative = True
        token = self._advance()
        if token.kind not in ("duration", "number"):
            self._fail(f"unexpected {self._describe(token)} in offset, expected a duration", token.pos)
        seconds = self._duration_value(token) * (-1 if negative else 1)
        if isinstance(expr, VectorSelector):
            if expr.offset:
                self._fail("offset may not be set multiple times", token.pos)
            return VectorSelector(expr.matchers, seconds)
        if isinstance(expr, MatrixSelector):
            if expr.selector.offset:
                self._fail("offset may not be set multiple times", token.pos)
            return MatrixSelector(VectorSelector(expr.selector.matchers, seconds), expr.range)
        self._fail("offset modifier must be preceded by an instant vector selector or range vector selector",
                   token.pos)
        raise AssertionError("unreachable")

    def _duration_value(self, token: Token) -> float:
        try:
            seconds = parse_duration(token.text) if token.kind == "duration" else float(token.text)
        except ValueError as exc:
            self._fail(str(exc), token.pos)
        if seconds <= 0 and token.kind == "duration":
            self._fail("duration must be greater than 0", token.pos)
        return seconds

    def _primary(self) -> Expr:
        token = self.token
        if token.kind == "number" or (token.kind == "ident" and token.text.lower() in ("inf", "nan")):
            self._advance()
            return NumberLiteral(_number(token.text))
        if token.kind == "duration":
            self._fail(f"unexpected duration {token.text!r}")
        if token.kind == "string":
            self._fail("string literals are not supported by the sandbox")
        if self._is("("):
            self._advance()
            inner = self._binary(0)
            self._expect(")", "parenthesised expression")
            return inner
        if self._is("{"):
            return self._selector(None, token.pos)
        if token.kind == "ident":
            return self._identifier()
        self._fail(f"unexpected {self._describe(token)}")
        raise AssertionError("unreachable")

    def _identifier(self) -> Expr:
        token = self._advance()
        name = token.text
        lowered = name.lower()
        grouping = self._is("(") or self._is("by") or self._is("without")
        if grouping and (lowered in AGGREGATIONS or lowered in UNSUPPORTED_AGGREGATIONS):
            return self._aggregation(lowered, token)
        if self._is("("):
            return self._call(name, token)
        if lowered in _KEYWORDS or lowered in SET_OPS:
            self._fail(f"unexpected keyword {name!r}", token.pos)
        return self._selector(name, token.pos)

    def _aggregation(self, op: str, token: Token) -> Expr:
        if op in UNSUPPORTED_AGGREGATIONS:
            self._fail(f"aggregation {op}() is not supported by the sandbox", token.pos)
        labels: tuple[str, ...] = ()
        without = False
        grouped = False
        if self._is("by") or self._is("without"):
            without = self._advance().text.lower() == "without"
            labels = self._label_list("by" if not without else "without")
            grouped = True
        self._expect("(", f"aggregation {op}")
        inner = self._binary(0)
        if self._is(","):
            self._fail(f"aggregation {op}() takes one argument")
        self._expect(")", f"aggregation {op}")
        if not grouped and (self._is("by") or self._is("without")):
            without = self._advance().text.lower() == "without"
            labels = self._label_list("by" if not without else "without")
        if is_scalar(inner) or isinstance(inner, MatrixSelector):
            kind = "scalar" if is_scalar(inner) else "range vector"
            self._fail(f"expected type instant vector in aggregation expression, got {kind}", token.pos)
        return Aggregation(op, inner, labels, without)

    def _label_list(self, clause: str) -> tuple[str, ...]:
        self._expect("(", f"{clause} clause")
        labels: list[str] = []
        while not self._is(")"):
            token = self._advance()
            if token.kind != "ident":
                self._fail(f"unexpected {self._describe(token)} in grouping opts, expected label", token.pos)
            labels.append(token.text)
            if self._is(","):
                self._advance()
            elif not self._is(")"):
                self._fail(f"unexpected {self._describe(self.token)} in grouping opts, expected \",\" or \")\"")
        self._advance()
        return tuple(labels)

    def _call(self, name: str, token: Token) -> Expr:
        if name not in FUNCTIONS:
            self._fail(f"function {name}() is not supported by the sandbox" if name in UNSUPPORTED_FUNCTIONS
                       else f"unknown function with name {name!r}", token.pos)
        self._advance()
        args: list[Expr] = []
        while not self._is(")"):
            args.append(self._binary(0))
            if self._is(","):
                self._advance()
            elif not self._is(")"):
                self._fail(f"unexpected {self._describe(self.token)} in call to {name}, expected \",\" or \")\"")
        self._advance()
        problem = check_call(name, args)
        if problem:
            self._fail(problem, token.pos)
        return Call(name, tuple(args))

    def _selector(self, name: str | None, pos: int) -> Expr:
        matchers: list[Matcher] = []
        if name is not None:
            matchers.append(Matcher("__name__", "=", name))
        if self._is("{"):
            self._advance()
            while not self._is("}"):
                matchers.append(self._matcher())
                if self._is(","):
                    self._advance()
                elif not self._is("}"):
                    self._fail(f"unexpected {self._describe(self.token)} in label matching, expected \",\" or \"}}\"")
            self._advance()
        names = [m for m in matchers if m.name == "__name__"]
        if len(names) > 1 and name is not None:
            self._fail(f"metric name must not be set twice: {name!r}", pos)
        if not any(not m.matches("") for m in matchers):
            self._fail("vector selector must contain at least one non-empty matcher", pos)
        return VectorSelector(tuple(matchers))

    def _matcher(self) -> Matcher:
        label = self._advance()
        if label.kind not in ("ident", "string"):
            self._fail(f"unexpected {self._describe(label)} in label matching, expected label", label.pos)
        label_name = label.text if label.kind == "ident" else _unquote(label.text)
        op_token = self._advance()
        if op_token.text not in ("=", "!=", "=~", "!~"):
            self._fail(f"unexpected {self._describe(op_token)} in label matching, expected one of \"=\", \"!=\", "
                       "\"=~\", \"!~\"", op_token.pos)
        value = self._advance()
        if value.kind != "string":
            self._fail(f"unexpected {self._describe(value)} in label matching, expected string", value.pos)
        try:
            text = _unquote(value.text)
        except ValueError as exc:
            self._fail(str(exc), value.pos)
        op: MatchOp = op_token.text  # type: ignore[assignment]
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(text, re.DOTALL)
            except re.error as exc:
                self._fail(f"invalid regular expression {text!r}: {exc}", value.pos)
        return Matcher(label_name, op, text, pattern)


# name -> argument types ("scalar", "vector", "matrix"); the evaluator implements exactly these.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "rate": ("matrix",),
    "irate": ("matrix",),
    "increase": ("matrix",),
    "histogram_quantile": ("scalar", "vector"),
    "abs": ("vector",),
    "ceil": ("vector",),
    "floor": ("vector",),
    "sqrt": ("vector",),
    "clamp_min": ("vector", "scalar"),
    "clamp_max": ("vector", "scalar"),
    "scalar": ("vector",),
    "vector": ("scalar",),
    "time": (),
}
# Prometheus functions outside the subset: refused by name rather than as unknown.
UNSUPPORTED_FUNCTIONS = frozenset({
    "absent", "absent_over_time", "avg_over_time", "changes", "clamp", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "histogram_avg", "histogram_count",
    "histogram_fraction", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "max_over_time", "min_over_time",
    "minute", "month", "predict_linear", "present_over_time", "quantile_over_time", "resets", "round", "sgn",
    "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "stddev_over_time", "stdvar_over_time",
    "sum_over_time", "timestamp", "year", "acos", "asin", "atan", "cos", "sin", "tan", "deg", "rad", "pi",
    "double_exponential_smoothing", "info", "mad_over_time", "ts_of_max_over_time", "ts_of_min_over_time",
    "ts_of_last_over_time", "first_over_time", "ts_of_first_over_time", "acosh", "asinh", "atanh", "cosh", "sinh",
    "tanh",
})


def _type_of(expr: Expr) -> str:
    if isinstance(expr, MatrixSelector):
        return "matrix"
    return "scalar" if is_scalar(expr) else "vector"


_TYPE_NAMES = {"scalar": "scalar", "vector": "instant vector", "matrix": "range vector"}


def check_call(name: str, args: list[Expr]) -> str | None:
    """Why ``name(args)`` cannot be evaluated, or None when it can."""
    if name not in FUNCTIONS:
        if name in UNSUPPORTED_FUNCTIONS:
            return f"function {name}() is not supported by the sandbox"
        return f"unknown function with name {name!r}"
    wanted = FUNCTIONS[name]
    if len(args) != len(wanted):
        return f"expected {len(wanted)} argument(s) in call to {name!r}, got {len(args)}"
    for index, (arg, kind) in enumerate(zip(args, wanted, strict=True)):
        got = _type_of(arg)
        if got != kind:
            return (f"expected type {_TYPE_NAMES[kind]} in call to function {name!r} (argument {index + 1}), "
                    f"got {_TYPE_NAMES[got]}")
    return None


def is_scalar(expr: Expr) -> bool:
    """Whether ``expr`` evaluates to a scalar (known from its syntax alone)."""
    if isinstance(expr, NumberLiteral):
        return True
    if isinstance(expr, Unary):
        return is_scalar(expr.expr)
    if isinstance(expr, Binary):
        return is_scalar(expr.lhs) and is_scalar(expr.rhs)
    if isinstance(expr, Call):
        return expr.name in ("scalar", "time")
    return False


def parse(query: str) -> Expr:
    """The syntax tree of ``query``; PromQLError (bad_data) naming the problem and its position."""
    return Parser(query).parse()


def format_float(value: float) -> str:
    """A sample value as Prometheus writes it in JSON: shortest round-trip digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    digits = mantissa.replace("-", "").replace(".", "")
    point = (mantissa.replace("-", "").find(".") if "." in mantissa else len(mantissa.replace("-", ""))) + int(
        exponent)
    sign = "-" if value < 0 else ""
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    return f"{sign}{digits[:point]}{'0' * max(0, point - len(digits))}" + (
        f".{digits[point:]}" if point < len(digits) else "")
