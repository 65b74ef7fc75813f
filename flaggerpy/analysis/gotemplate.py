"""A bounded interpreter for Go's text/template language, as Flagger renders MetricTemplate queries.

Flagger parses ``spec.query`` with Go's text/template, its variables being niladic functions (``{{ namespace }}``,
``{{ variables.key }}``) and Go's builtins (``if``/``else``/``range``/``with``, ``$x :=``, ``index``, ``eq``,
``printf``, pipelines...). This module parses the same language and evaluates it under a :class:`Budget`: every
evaluation step is counted, the output and every string a function builds are capped, and the clock is read every
few dozen steps. A template written by a tenant therefore renders in a few milliseconds or fails with
:class:`BudgetExceeded`; it can neither hold the event loop nor exhaust the controller's memory (a nested
``range`` or repeated doubling of a ``$x`` hits the step or size cap long before either).

``define``/``template``/``block`` and ``call`` are refused: MetricTemplates have no use for them.
"""

from __future__ import annotations

import functools
import html
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MAX_SOURCE = 64 * 1024
_MAX_WIDTH = 256
_CLOCK_EVERY = 64
NO_VALUE = "<no value>"


class TemplateError(ValueError):
    """A query template cannot be rendered; the message names the variable or the syntax problem."""


class BudgetExceeded(TemplateError):
    """Rendering went past its output size, step count or time budget."""


@dataclass(frozen=True)
class Budget:
    """How much one render may produce and do: output bytes, evaluation steps and seconds of CPU.

    The time is the rendering thread's CPU time, so a busy node that preempts the controller cannot fail a
    template that is within its budget.
    """

    max_output: int = 64 * 1024
    max_steps: int = 100_000
    seconds: float = 0.005


# -- lexing ------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\\n]|\\.)+')
    | (?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
    | (?P<declare>:=)
    | (?P<assign>=)
    | (?P<var>\$[A-Za-z_0-9]*)
    | (?P<field>(?:\.[A-Za-z_]\w*)+)
    | (?P<dot>\.)
    | (?P<ident>[A-Za-z_]\w*)
    | (?P<punct>[()|,\[\]])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


@dataclass(frozen=True)
class _Item:
    """A piece of the source: text, or an action's tokens."""

    line: int
    text: str | None = None
    tokens: tuple[_Tok, ...] = ()


def _lex(source: str) -> list[_Item]:
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"query template is longer than {MAX_SOURCE // 1024} KiB")
    items: list[_Item] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        line = source.count("\n", 0, pos) + 1
        if start < 0:
            if text:
                items.append(_Item(line, text=text))
            return items
        inner = start + 2
        if source.startswith("- ", inner) or source[inner: inner + 2] in ("-\t", "-\n", "-\r"):
            text = text.rstrip(" \t\r\n")
            inner += 1
        if text:
            items.append(_Item(line, text=text))
        line = source.count("\n", 0, start) + 1
        body_start = inner
        stripped = source[inner:].lstrip()
        if stripped.startswith("/*"):
            close = source.find("*/", inner)
            if close < 0:
                raise TemplateError(f"query template syntax error on line {line}: unclosed comment")
            end = source.find("}}", close + 2)
            if end < 0 or source[close + 2: end].strip() not in ("", "-"):
                raise TemplateError(f"query template syntax error on line {line}: comment ends before '}}}}'")
            trim_next = source[close + 2: end].strip() == "-"
            pos = end + 2
            continue
        tokens, end, trim_next = _lex_action(source, body_start, line)
        items.append(_Item(line, tokens=tuple(tokens)))
        pos = end


def _lex_action(source: str, pos: int, line: int) -> tuple[list[_Tok], int, bool]:
    tokens: list[_Tok] = []
    while True:
        rest = source[pos:]
        blank = len(rest) - len(rest.lstrip())
        if rest[blank:].startswith("}}"):
            return tokens, pos + blank + 2, False
        if blank and rest[blank:].startswith("-}}"):
            return tokens, pos + blank + 3, True
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            if pos >= len(source):
                raise TemplateError(f"query template syntax error on line {line}: unclosed action")
            bad = source[pos + blank: pos + blank + 1]
            raise TemplateError(f"query template syntax error on line {line}: unexpected {bad!r} in action")
        kind = match.lastgroup or ""
        tokens.append(_Tok(kind, match.group(kind)))
        pos = match.end()


# -- parsing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operand:
    """A term (literal, function name, ``.``, ``$x``, parenthesised pipeline) followed by a chain of fields."""

    kind: str
    value: Any
    fields: tuple[str, ...] = ()
    index: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Pipeline:
    declare: tuple[str, ...]
    assign: bool
    commands: tuple[tuple[_Operand, ...], ...]
    line: int


@dataclass
class _Node:
    kind: str  # text, action, if, range, with, break, continue
    line: int
    text: str = ""
    pipe: _Pipeline | None = None
    body: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}


class _Parser:
    def __init__(self, items: list[_Item]) -> None:
        self._items = items
        self._pos = 0
        self._loops = 0

    def parse(self) -> list[_Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise self._error(stop.line, f"unexpected {{{{{stop.tokens[0].text}}}}}")
        return nodes

    @staticmethod
    def _error(line: int, message: str) -> TemplateError:
        return TemplateError(f"query template syntax error on line {line}: {message}")

    def _list(self) -> tuple[list[_Node], _Item | None]:
        """Nodes up to an ``else`` or ``end`` action (returned, not consumed past) or the end of the source."""
        nodes: list[_Node] = []
        while self._pos < len(self._items):
            item = self._items[self._pos]
            self._pos += 1
            if item.text is not None:
                nodes.append(_Node("text", item.line, text=item.text))
                continue
            tokens = item.tokens
            if not tokens:
                raise self._error(item.line, "missing value for command")
            head = tokens[0]
            if head.kind == "ident" and head.text in ("else", "end"):
                return nodes, item
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                nodes.append(self._control(head.text, item))
            elif head.kind == "ident" and head.text in ("break", "continue"):
                if not self._loops:
                    raise self._error(item.line, f"{{{{{head.text}}}}} outside {{{{range}}}}")
                nodes.append(_Node(head.text, item.line))
            elif head.kind == "ident" and head.text in ("define", "template", "block"):
                raise self._error(item.line, f"{{{{{head.text}}}}} is not supported in MetricTemplates")
            else:
                nodes.append(_Node("action", item.line, pipe=self._pipeline(list(tokens), item.line)))
        return nodes, None

    def _control(self, kind: str, item: _Item, tokens: Sequence[_Tok] | None = None) -> _Node:
        tokens = list(item.tokens[1:] if tokens is None else tokens)
        node = _Node(kind, item.line, pipe=self._pipeline(tokens, item.line))
        if kind == "range":
            self._loops += 1
        body, stop = self._list()
        if kind == "range":
            self._loops -= 1
        node.body = body
        if stop is None:
            raise self._error(item.line, f"unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}")
        if stop.tokens[0].text == "else":
            rest = list(stop.tokens[1:])
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with") and kind != "range":
                # ``else if`` / ``else with``: the rest of the chain shares this node's {{end}}.
                node.otherwise = [self._control(rest[0].text, stop, rest[1:])]
                return node
            if rest:
                raise self._error(stop.line, "unexpected tokens after {{else}}")
            node.otherwise, stop = self._list()
            if stop is None or stop.tokens[0].text != "end":
                raise self._error(item.line, f"{{{{{kind}}}}} has no {{{{end}}}}")
        if len(stop.tokens) > 1:
            raise self._error(stop.line, "unexpected tokens after {{end}}")
        return node

    def _pipeline(self, tokens: list[_Tok], line: int) -> _Pipeline:
        declare: list[str] = []
        assign = False
        names = tokens[:4]
        kinds = [t.kind for t in names]
        if len(kinds) >= 2 and kinds[0] == "var" and kinds[1] in ("declare", "assign"):
            declare, assign, tokens = [names[0].text], kinds[1] == "assign", tokens[2:]
        elif len(kinds) >= 4 and kinds[:2] == ["var", "punct"] and names[1].text == "," and kinds[2] == "var" \
                and kinds[3] in ("declare", "assign"):
            declare, assign, tokens = [names[0].text, names[2].text], kinds[3] == "assign", tokens[4:]
        commands: list[tuple[_Operand, ...]] = []
        current: list[_Operand] = []
        peek = _Peek(tokens)
        while peek.more():
            tok = peek.next()
            if tok.kind == "punct" and tok.text == "|":
                if not current:
                    raise self._error(line, "missing command before '|'")
                commands.append(tuple(current))
                current = []
                continue
            current.append(self._operand(tok, peek, line))
        if not current:
            raise self._error(line, "missing value for command")
        commands.append(tuple(current))
        return _Pipeline(tuple(declare), assign, tuple(commands), line)

    def _operand(self, tok: _Tok, peek: _Peek, line: int) -> _Operand:
        kind, text = tok.kind, tok.text
        if kind == "str":
            try:
                operand = _Operand("value", json.loads(text))
            except ValueError:
                operand = _Operand("value", text[1:-1].encode().decode("unicode_escape"))
        elif kind == "raw":
            operand = _Operand("value", text[1:-1])
        elif kind == "char":
            operand = _Operand("value", ord(text[1:-1].encode().decode("unicode_escape")[0]))
        elif kind == "num":
            operand = _Operand("value", _number(text, line))
        elif kind == "ident":
            if text in ("true", "false"):
                operand = _Operand("value", text == "true")
            elif text == "nil":
                operand = _Operand("value", None)
            elif text in _KEYWORDS:
                raise self._error(line, f"unexpected keyword {text!r} in command")
            else:
                operand = _Operand("func", text)
        elif kind == "var":
            operand = _Operand("var", text)
        elif kind == "dot":
            operand = _Operand("dot", None)
        elif kind == "field":
            operand = _Operand("dot", None, tuple(text[1:].split(".")))
            return self._index(operand, peek, line)
        elif kind == "punct" and text == "(":
            inner: list[_Tok] = []
            depth = 1
            while peek.more():
                nxt = peek.next()
                if nxt.kind == "punct" and nxt.text in "()":
                    depth += 1 if nxt.text == "(" else -1
                    if depth == 0:
                        break
                inner.append(nxt)
            if depth:
                raise self._error(line, "unclosed left paren")
            operand = _Operand("pipe", self._pipeline(inner, line))
        else:
            raise self._error(line, f"unexpected {text!r} in command")
        if peek.more() and peek.peek().kind == "field":
            fields = tuple(peek.next().text[1:].split("."))
            operand = _Operand(operand.kind, operand.value, fields)
        return self._index(operand, peek, line)

    def _index(self, operand: _Operand, peek: _Peek, line: int) -> _Operand:
        # flaggerpy accepts ``variables["my-key"]`` as well as Go's ``index variables "my-key"``.
        keys: list[Any] = []
        while peek.more() and peek.peek().kind == "punct" and peek.peek().text == "[":
            peek.next()
            if not peek.more():
                raise self._error(line, "unclosed '['")
            key = peek.next()
            if key.kind not in ("str", "raw", "num") or not peek.more() or peek.next().text != "]":
                raise self._error(line, "'[...]' takes one literal key")
            keys.append(self._operand(key, _Peek([]), line).value)
        if keys:
            return _Operand(operand.kind, operand.value, operand.fields, tuple(keys))
        return operand


class _Peek:
    def __init__(self, tokens: Sequence[_Tok]) -> None:
        self._tokens = list(tokens)
        self._pos = 0

    def more(self) -> bool:
        return self._pos < len(self._tokens)

    def peek(self) -> _Tok:
        return self._tokens[self._pos]

    def next(self) -> _Tok:
        tok = self._tokens[self._pos]
        self._pos += 1
        return tok


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        try:
            return float(clean)
        except ValueError:
            raise TemplateError(f"query template syntax error on line {line}: bad number {text!r}") from None


def parse(source: str) -> list[_Node]:
    """The template's syntax tree; TemplateError says what is wrong and on which line."""
    return _Parser(_lex(source)).parse()


# -- evaluation --------------------------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


Functions = Mapping[str, Callable[[], Any]]
MissingFunction = Callable[[str], TemplateError]
MissingKey = Callable[[Any, str], TemplateError]


class _Renderer:
    def __init__(self, functions: Functions, budget: Budget, missing_function: MissingFunction,
                 missing_key: MissingKey) -> None:
        self._functions = functions
        self._budget = budget
        self._missing_function = missing_function
        self._missing_key = missing_key
        self._steps = 0
        self._size = 0
        self._deadline = time.thread_time() + budget.seconds
        self._out: list[str] = []
        self._scopes: list[dict[str, Any]] = [{"$": None}]

    def run(self, nodes: list[_Node]) -> str:
        self._walk(nodes)
        return "".join(self._out)

    def _step(self) -> None:
        self._steps += 1
        if self._steps > self._budget.max_steps:
            raise BudgetExceeded(f"rendering takes more than {self._budget.max_steps} steps")
        if self._steps % _CLOCK_EVERY == 0 and time.thread_time() > self._deadline:
            raise BudgetExceeded(f"rendering takes more than {self._budget.seconds * 1000:g} ms of CPU")

    def _sized(self, text: str) -> str:
        if len(text) > self._budget.max_output:
            raise BudgetExceeded(f"a value is larger than {self._budget.max_output // 1024} KiB")
        return text

    def _emit(self, text: str) -> None:
        self._size += len(text)
        if self._size > self._budget.max_output:
            raise BudgetExceeded(f"the rendered query is larger than {self._budget.max_output // 1024} KiB")
        self._out.append(text)

    def _walk(self, nodes: list[_Node], dot: Any = None) -> None:
        for node in nodes:
            self._step()
            if node.kind == "text":
                self._emit(node.text)
            elif node.kind == "action":
                assert node.pipe is not None
                value = self._pipeline(node.pipe, dot)
                if not node.pipe.declare:
                    self._emit(self._sized(go_string(value)))
            elif node.kind in ("if", "with"):
                self._scopes.append({})
                try:
                    assert node.pipe is not None
                    value = self._pipeline(node.pipe, dot)
                    if truth(value):
                        self._walk(node.body, value if node.kind == "with" else dot)
                    else:
                        self._walk(node.otherwise, dot)
                finally:
                    self._scopes.pop()
            elif node.kind == "range":
                self._range(node, dot)
            elif node.kind == "break":
                raise _Break
            elif node.kind == "continue":
                raise _Continue

    def _range(self, node: _Node, dot: Any) -> None:
        assert node.pipe is not None
        pipe = node.pipe
        self._scopes.append({})
        try:
            plain = _Pipeline((), False, pipe.commands, pipe.line)
            value = self._pipeline(plain, dot)
            pairs: Iterator[tuple[Any, Any]]
            if isinstance(value, Mapping):
                pairs = ((key, value[key]) for key in sorted(value))
            elif isinstance(value, list | tuple):
                pairs = iter(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                pairs = ((i, i) for i in range(value))
            elif value is None:
                pairs = iter(())
            else:
                raise TemplateError(f"line {pipe.line}: range can't iterate over {go_string(value)}")
            empty = True
            for key, item in pairs:
                self._step()
                empty = False
                if len(pipe.declare) == 2:
                    self._scopes[-1][pipe.declare[0]] = key
                    self._scopes[-1][pipe.declare[1]] = item
                elif pipe.declare:
                    self._scopes[-1][pipe.declare[0]] = item
                try:
                    self._walk(node.body, item)
                except _Continue:
                    continue
                except _Break:
                    break
            if empty:
                self._walk(node.otherwise, dot)
        finally:
            self._scopes.pop()

    def _pipeline(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = _NOTHING
        for command in pipe.commands:
            self._step()
            value = self._command(command, dot, value, pipe.line)
        if pipe.declare:
            name = pipe.declare[-1]
            if pipe.assign:
                for scope in reversed(self._scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise TemplateError(f"line {pipe.line}: undefined variable: {name}")
            else:
                self._scopes[-1][name] = value
        return value

    def _command(self, command: tuple[_Operand, ...], dot: Any, piped: Any, line: int) -> Any:
        head, args = command[0], command[1:]
        if head.kind == "func" and not head.fields and not head.index:
            return self._call(head.value, args, dot, piped, line)
        if args or piped is not _NOTHING:
            raise TemplateError(f"line {line}: can't give argument to non-function {self._describe(head)}")
        return self._operand(head, dot, line)

    @staticmethod
    def _describe(operand: _Operand) -> str:
        return str(operand.value) if operand.kind != "pipe" else "(...)"

    def _operand(self, operand: _Operand, dot: Any, line: int) -> Any:
        self._step()
        if operand.kind == "value":
            value = operand.value
        elif operand.kind == "dot":
            value = dot
            if operand.fields and dot is None:
                name = operand.fields[0]
                raise TemplateError(
                    f"'{{{{ .{name} }}}}' is Go data-field syntax, which Flagger's templates do not support: "
                    f"write {{{{ {name} }}}}"
                )
        elif operand.kind == "var":
            for scope in reversed(self._scopes):
                if operand.value in scope:
                    value = scope[operand.value]
                    break
            else:
                raise TemplateError(f"line {line}: undefined variable: {operand.value}")
        elif operand.kind == "pipe":
            value = self._pipeline(operand.value, dot)
        else:
            value = self._call(operand.value, (), dot, _NOTHING, line)
        for name in operand.fields:
            value = self._field(value, name)
        for key in operand.index:
            value = self._field(value, key)
        return value

    def _field(self, value: Any, name: Any) -> Any:
        if isinstance(value, Mapping):
            if name in value:
                return value[name]
            raise self._missing_key(value, str(name))
        raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")

    def _call(self, name: str, args: Sequence[_Operand], dot: Any, piped: Any, line: int) -> Any:
        if name in ("and", "or"):
            return self._logic(name, args, dot, piped, line)
        values = [self._operand(arg, dot, line) for arg in args]
        if piped is not _NOTHING:
            values.append(piped)
        if name in self._functions:
            if values:
                raise TemplateError(f"line {line}: wrong number of args for {name}: want 0 got {len(values)}")
            return self._functions[name]()
        builtin = _BUILTINS.get(name)
        if builtin is None:
            raise self._missing_function(name)
        result = builtin(values, line)
        if isinstance(result, str):
            self._sized(result)
        return result

    def _logic(self, name: str, args: Sequence[_Operand], dot: Any, piped: Any, line: int) -> Any:
        pending: list[Callable[[], Any]] = [functools.partial(self._operand, arg, dot, line) for arg in args]
        if piped is not _NOTHING:
            pending.append(functools.partial(lambda value: value, piped))
        if not pending:
            raise TemplateError(f"line {line}: wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for get in pending:
            value = get()
            if truth(value) == (name == "or"):
                return value
        return value


class _Nothing:
    """No value piped into a command."""


_NOTHING = _Nothing()


def render(source: str, functions: Functions, *, budget: Budget, missing_function: MissingFunction,
           missing_key: MissingKey, tree: list[_Node] | None = None) -> str:
    """``source`` rendered with ``functions`` (Flagger's niladic variables) within ``budget``."""
    nodes = tree if tree is not None else parse(source)
    return _Renderer(functions, budget, missing_function, missing_key).run(nodes)


# -- Go's values and builtins ------------------------------------------------------------------------------------


def truth(value: Any) -> bool:
    """Go's notion of true: not false, 0, nil, or an empty string, map or list."""
    if value is None or value is _NOTHING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | Mapping | list | tuple):
        return len(value) > 0
    return True


def go_type(value: Any) -> str:
    """Go's name of the value's type, for messages."""
    return {bool: "bool", int: "int", float: "float64", str: "string", type(None): "nil"}.get(
        type(value), "map[string]string" if isinstance(value, Mapping) else type(value).__name__
    )


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (shortest representation; an exponent from 1e+06 up or below 1e-04)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # the decimal point's position in ``text``
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_string(value: Any) -> str:
    """The value as Go's ``%v`` (and so ``{{ x }}``) prints it."""
    if value is None or value is _NOTHING:
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_string(k)}:{go_string(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    return str(value)


def _arity(name: str, values: Sequence[Any], count: int, line: int) -> None:
    if len(values) != count:
        raise TemplateError(f"line {line}: wrong number of args for {name}: want {count} got {len(values)}")


def _basic(value: Any, line: int) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    raise TemplateError(f"line {line}: incompatible type for comparison: {go_type(value)}")


def _eq(values: Sequence[Any], line: int) -> bool:
    if len(values) < 2:
        raise TemplateError(f"line {line}: missing argument for comparison")
    first = _basic(values[0], line)
    return any(first == _basic(other, line) and type(first) is type(other) for other in values[1:])


def _ne(values: Sequence[Any], line: int) -> bool:
    _arity("ne", values, 2, line)
    return not _eq(values, line)


def _not(values: Sequence[Any], line: int) -> bool:
    _arity("not", values, 1, line)
    return not truth(values[0])


def _order(name: str, test: Callable[[Any, Any], bool]) -> Callable[[Sequence[Any], int], bool]:
    def compare(values: Sequence[Any], line: int) -> bool:
        _arity(name, values, 2, line)
        a, b = (_basic(v, line) for v in values)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        if not numbers and type(a) is not type(b):
            raise TemplateError(f"line {line}: incompatible types for comparison")
        if isinstance(a, bool) or a is None:
            raise TemplateError(f"line {line}: invalid type for comparison")
        return test(a, b)

    return compare


def _index(values: Sequence[Any], line: int) -> Any:
    if not values:
        raise TemplateError(f"line {line}: wrong number of args for index: want at least 1 got 0")
    value = values[0]
    for key in values[1:]:
        if isinstance(value, Mapping):
            if key not in value:
                return ""
            value = value[key]
        elif isinstance(value, str | list | tuple) and isinstance(key, int) and not isinstance(key, bool):
            if not 0 <= key < len(value):
                raise TemplateError(f"line {line}: index out of range: {key}")
            value = value[key].encode()[0] if isinstance(value, str) else value[key]
        else:
            raise TemplateError(f"line {line}: can't index item of type {go_type(value)}")
    return value


def _slice(values: Sequence[Any], line: int) -> Any:
    if not values or not isinstance(values[0], str | list | tuple):
        raise TemplateError(f"line {line}: slice needs a string or list")
    bounds = values[1:]
    if len(bounds) > 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise TemplateError(f"line {line}: slice takes at most two integer indexes")
    start, end = (list(bounds) + [0, len(values[0])][len(bounds):])[:2]
    if not 0 <= start <= end <= len(values[0]):
        raise TemplateError(f"line {line}: slice index out of range")
    return values[0][start:end]


def _len(values: Sequence[Any], line: int) -> int:
    _arity("len", values, 1, line)
    value = values[0]
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    raise TemplateError(f"line {line}: len of type {go_type(value)}")


def _print(values: Sequence[Any], line: int) -> str:
    # Go's Sprint puts a space between operands when neither is a string.
    out: list[str] = []
    for i, value in enumerate(values):
        if i and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(go_string(value))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(values: Sequence[Any], line: int) -> str:
    if not values or not isinstance(values[0], str):
        raise TemplateError(f"line {line}: printf needs a format string")
    args = list(values[1:])

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if any(int(n) > _MAX_WIDTH for n in (width, precision) if n):
            raise BudgetExceeded(f"printf width or precision over {_MAX_WIDTH}")
        if not args:
            return f"%!{kind}(MISSING)"
        arg = args.pop(0)
        spec = f"%{flags}{width or ''}{'.' + precision if precision else ''}"
        if kind in "dxXob" and isinstance(arg, int) and not isinstance(arg, bool):
            return (spec + ("d" if kind == "b" else kind)) % arg if kind != "b" else format(arg, "b")
        if kind in "feEgG" and isinstance(arg, int | float) and not isinstance(arg, bool):
            return (spec + kind) % arg
        if kind == "q":
            return (spec + "s") % json.dumps(go_string(arg) if not isinstance(arg, str) else arg)
        if kind == "t" and isinstance(arg, bool):
            return (spec + "s") % go_string(arg)
        if kind in "sv":
            return (spec + "s") % go_string(arg)
        return f"%!{kind}({go_type(arg)}={go_string(arg)})"

    text = _VERB.sub(verb, values[0])
    if args:
        text += "%!(EXTRA " + ", ".join(f"{go_type(a)}={go_string(a)}" for a in args) + ")"
    return text


def _escaper(escape: Callable[[str], str]) -> Callable[[Sequence[Any], int], str]:
    return lambda values, line: escape(_print(values, line))


def _js(text: str) -> str:
    return json.dumps(text)[1:-1].replace("'", "\\'").replace("<", "\\u003C").replace(">", "\\u003E")


_BUILTINS: dict[str, Callable[[Sequence[Any], int], Any]] = {
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": _ne,
    "lt": _order("lt", lambda a, b: a < b),
    "le": _order("le", lambda a, b: a <= b),
    "gt": _order("gt", lambda a, b: a > b),
    "ge": _order("ge", lambda a, b: a >= b),
    "print": _print,
    "println": lambda values, line: " ".join(go_string(v) for v in values) + "\n",
    "printf": _printf,
    "urlquery": _escaper(lambda text: urllib.parse.quote_plus(text, safe="")),
    "html": _escaper(lambda text: html.escape(text, quote=True).replace("&#x27;", "&#39;")),
    "js": _escaper(_js),
}
