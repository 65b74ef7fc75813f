"""Evaluation of parsed PromQL at one instant over a :class:`SampleStore`, following Prometheus's semantics.

Instant vectors look back ``LOOKBACK`` seconds for each series' latest sample; ``rate``/``increase`` extrapolate to
the window's edges the way Prometheus does (so the two answer the same numbers for the same samples); arithmetic
drops the metric name; vectors pair one-to-one on their labels (or ``on``/``ignoring`` lists).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from flaggerpy.sandbox.promql.parse import (
    COMPARISONS,
    SET_OPS,
    Aggregation,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    PromQLError,
    Unary,
    VectorMatching,
    VectorSelector,
)
from flaggerpy.sandbox.promql.store import SampleStore

LOOKBACK = 300.0  # Prometheus's default --query.lookback-delta.
NAME = "__name__"

LabelMap = dict[str, str]


@dataclass
class Sample:
    """One element of an instant vector."""

    labels: LabelMap
    value: float


@dataclass
class RangeSeries:
    """One element of a range vector: (timestamp, value) pairs, oldest first."""

    labels: LabelMap
    points: list[tuple[float, float]]


Vector = list[Sample]
Matrix = list[RangeSeries]
Value = float | Vector | Matrix


class Evaluator:
    """Evaluates expressions at time ``at`` (seconds since the epoch) over ``store``."""

    def __init__(self, store: SampleStore, at: float) -> None:
        self.store = store
        self.at = at

    def eval(self, expr: Expr) -> Value:
        """The value of ``expr``: a float (scalar), a list of Sample (vector) or of RangeSeries (matrix)."""
        if isinstance(expr, NumberLiteral):
            return expr.value
        if isinstance(expr, VectorSelector):
            return self._instant(expr)
        if isinstance(expr, MatrixSelector):
            return self._range(expr)
        if isinstance(expr, Unary):
            return self._negate(self.eval(expr.expr))
        if isinstance(expr, Aggregation):
            return aggregate(expr, self._vector(expr.expr))
        if isinstance(expr, Call):
            return self._call(expr)
        if isinstance(expr, Binary):
            return self._binary(expr)
        raise PromQLError(f"cannot evaluate {type(expr).__name__}", "execution")

    def _vector(self, expr: Expr) -> Vector:
        value = self.eval(expr)
        assert isinstance(value, list)
        return value  # type: ignore[return-value]

    # selectors

    def _matching_series(self, selector: VectorSelector) -> list:
        return [s for s in self.store.series() if all(m.matches(s.label(m.name)) for m in selector.matchers)]

    def _instant(self, selector: VectorSelector) -> Vector:
        at = self.at - selector.offset
        out: Vector = []
        for series in self._matching_series(selector):
            latest: tuple[float, float | None] | None = None
            for point in reversed(series.samples):
                if point[0] <= at:
                    latest = point
                    break
            if latest is None or latest[0] <= at - LOOKBACK or latest[1] is None:
                continue
            out.append(Sample(dict(series.labels), latest[1]))
        return out

    def _range(self, expr: MatrixSelector) -> Matrix:
        end = self.at - expr.selector.offset
        start = end - expr.range
        out: Matrix = []
        for series in self._matching_series(expr.selector):
            points = [(t, v) for t, v in series.samples if start < t <= end and v is not None]
            if points:
                out.append(RangeSeries(dict(series.labels), points))
        return out

    # operators

    def _negate(self, value: Value) -> Value:
        if isinstance(value, float | int):
            return -value
        return [Sample(_without_name(s.labels), -s.value) for s in value]  # type: ignore[union-attr]

    def _binary(self, expr: Binary) -> Value:
        lhs, rhs = self.eval(expr.lhs), self.eval(expr.rhs)
        if expr.op in SET_OPS:
            return set_operation(expr.op, lhs, rhs, expr.matching)  # type: ignore[arg-type]
        lhs_scalar, rhs_scalar = not isinstance(lhs, list), not isinstance(rhs, list)
        if lhs_scalar and rhs_scalar:
            value, _ = apply_op(expr.op, lhs, rhs)  # type: ignore[arg-type]
            return value
        if lhs_scalar or rhs_scalar:
            vector = rhs if lhs_scalar else lhs
            scalar = lhs if lhs_scalar else rhs
            return vector_scalar(expr, vector, scalar, swap=lhs_scalar)  # type: ignore[arg-type]
        return vector_vector(expr, lhs, rhs)  # type: ignore[arg-type]

    # functions

    def _call(self, call: Call) -> Value:
        name, args = call.name, call.args
        if name in ("rate", "increase", "irate"):
            matrix = self.eval(args[0])
            assert isinstance(args[0], MatrixSelector)
            window = args[0].range
            end = self.at - args[0].selector.offset
            return range_function(name, matrix, end - window, end)  # type: ignore[arg-type]
        if name == "histogram_quantile":
            phi = self.eval(args[0])
            return histogram_quantile(float(phi), self._vector(args[1]))  # type: ignore[arg-type]
        if name == "scalar":
            vector = self._vector(args[0])
            return vector[0].value if len(vector) == 1 else math.nan
        if name == "vector":
            return [Sample({}, float(self.eval(args[0])))]  # type: ignore[arg-type]
        if name == "time":
            return self.at
        if name in ("clamp_min", "clamp_max"):
            bound = float(self.eval(args[1]))  # type: ignore[arg-type]
            pick = max if name == "clamp_min" else min
            return [Sample(_without_name(s.labels), pick(s.value, bound)) for s in self._vector(args[0])]
        return [Sample(_without_name(s.labels), _MATH[name](s.value)) for s in self._vector(args[0])]


def _sqrt(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan


_MATH: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": lambda v: float(math.ceil(v)) if math.isfinite(v) else v,
    "floor": lambda v: float(math.floor(v)) if math.isfinite(v) else v,
    "sqrt": _sqrt,
}


def _without_name(labels: LabelMap) -> LabelMap:
    return {k: v for k, v in labels.items() if k != NAME}


def _key(labels: LabelMap, names: tuple[str, ...], on: bool) -> tuple[tuple[str, str], ...]:
    """The labels two vector elements must share to be paired (never the metric name, unless on() lists it)."""
    if on:
        return tuple((n, labels.get(n, "")) for n in sorted(set(names)))
    dropped = {*names, NAME}
    return tuple(sorted((k, v) for k, v in labels.items() if k not in dropped))


# -- arithmetic and comparisons ---------------------------------------------------------------------------------


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _modulo(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _power(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError):
        if a == 0 and b < 0:
            return math.inf
        return math.nan if a < 0 else math.inf


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
    "%": _modulo,
    "^": _power,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def apply_op(op: str, a: float, b: float) -> tuple[float, bool]:
    """(value, keep) of ``a op b``: comparisons keep or drop the element, arithmetic always keeps it."""
    if op in _COMPARE:
        result = _COMPARE[op](a, b)
        return (1.0 if result else 0.0), result
    try:
        return _ARITHMETIC[op](a, b), True
    except OverflowError:
        return math.inf, True


def _result_labels(expr: Binary, labels: LabelMap) -> LabelMap:
    if expr.op in COMPARISONS and not expr.return_bool:
        return dict(labels)
    return _without_name(labels)


def vector_scalar(expr: Binary, vector: Vector, scalar: float, *, swap: bool) -> Vector:
    """``vector op scalar`` (or ``scalar op vector`` when ``swap``), element by element."""
    out: Vector = []
    for sample in vector:
        a, b = (scalar, sample.value) if swap else (sample.value, scalar)
        value, keep = apply_op(expr.op, a, b)
        if expr.op in COMPARISONS and not expr.return_bool:
            if keep:
                # A comparison filter returns the vector's own value, whichever side it is on.
                out.append(Sample(dict(sample.labels), sample.value))
            continue
        out.append(Sample(_result_labels(expr, sample.labels), value))
    return out


def vector_vector(expr: Binary, lhs: Vector, rhs: Vector) -> Vector:
    """One-to-one matching: each lhs element pairs with the rhs element sharing its labels."""
    matching = expr.matching
    right: dict[tuple[tuple[str, str], ...], Sample] = {}
    for sample in rhs:
        key = _key(sample.labels, matching.labels, matching.on)
        if key in right:
            raise PromQLError(
                f"found duplicate series for the match group {dict(key)} on the right hand-side of the operation: "
                f"[{right[key].labels}, {sample.labels}]; many-to-many matching not allowed: matching labels must "
                "be unique on one side", "execution")
        right[key] = sample
    out: Vector = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for sample in lhs:
        key = _key(sample.labels, matching.labels, matching.on)
        other = right.get(key)
        if other is None:
            continue
        if key in seen:
            raise PromQLError(
                f"found duplicate series for the match group {dict(key)} on the left hand-side of the operation; "
                "many-to-many matching not allowed: matching labels must be unique on one side", "execution")
        seen.add(key)
        value, keep = apply_op(expr.op, sample.value, other.value)
        if expr.op in COMPARISONS and not expr.return_bool:
            if keep:
                out.append(Sample(_matched_labels(expr, sample.labels), sample.value))
            continue
        out.append(Sample(_matched_labels(expr, sample.labels), value))
    return out


def _matched_labels(expr: Binary, labels: LabelMap) -> LabelMap:
    result = _result_labels(expr, labels)
    if expr.matching.on:
        return {k: v for k, v in result.items() if k in expr.matching.labels}
    return {k: v for k, v in result.items() if k not in expr.matching.labels}


def set_operation(op: str, lhs: Vector, rhs: Vector, matching: VectorMatching) -> Vector:
    """``and``, ``or`` and ``unless`` on label sets (the metric name never takes part in the match)."""
    right_keys = {_key(s.labels, matching.labels, matching.on) for s in rhs}
    if op == "and":
        return [s for s in lhs if _key(s.labels, matching.labels, matching.on) in right_keys]
    if op == "unless":
        return [s for s in lhs if _key(s.labels, matching.labels, matching.on) not in right_keys]
    left_keys = {_key(s.labels, matching.labels, matching.on) for s in lhs}
    return [*lhs, *(s for s in rhs if _key(s.labels, matching.labels, matching.on) not in left_keys)]


# -- aggregation ------------------------------------------------------------------------------------------------


def aggregate(expr: Aggregation, vector: Vector) -> Vector:
    """``sum``/``avg``/``max``/``min``/``count`` grouped ``by`` or ``without`` labels."""
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for sample in vector:
        if expr.without:
            dropped = {*expr.labels, NAME}
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in dropped))
        else:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k in expr.labels and v))
        groups.setdefault(key, []).append(sample.value)
    return [Sample(dict(key), _AGGREGATORS[expr.op](values)) for key, values in groups.items()]


def _max(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return max(real) if real else math.nan


def _min(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return min(real) if real else math.nan


_AGGREGATORS: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda values: math.fsum(values) if all(math.isfinite(v) for v in values) else sum(values),
    "avg": lambda values: math.fsum(values) / len(values) if all(math.isfinite(v) for v in values)
    else sum(values) / len(values),
    "max": _max,
    "min": _min,
    "count": lambda values: float(len(values)),
}


# -- range functions --------------------------------------------------------------------------------------------


def range_function(name: str, matrix: Matrix, start: float, end: float) -> Vector:
    """``rate``/``increase`` (extrapolated, as Prometheus) or ``irate`` of every series of a range vector."""
    out: Vector = []
    for series in matrix:
        if len(series.points) < 2:
            continue
        value = _irate(series.points) if name == "irate" else _extrapolated(series.points, start, end,
                                                                             name == "rate")
        out.append(Sample(_without_name(series.labels), value))
    return out


def _irate(points: list[tuple[float, float]]) -> float:
    (t0, v0), (t1, v1) = points[-2], points[-1]
    # A counter that went down was reset: everything it counted since is new.
    delta = v1 if v1 < v0 else v1 - v0
    return delta / (t1 - t0) if t1 > t0 else math.nan


def _extrapolated(points: list[tuple[float, float]], start: float, end: float, per_second: bool) -> float:
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    delta = last_v - first_v
    previous = first_v
    for _, value in points[1:]:
        if value < previous:
            delta += previous
        previous = value
    sampled = last_t - first_t
    if sampled <= 0:
        return math.nan
    average_gap = sampled / (len(points) - 1)
    to_start = first_t - start
    to_end = end - last_t
    # A counter cannot have been below zero: do not extrapolate back past the moment it would have been zero.
    if delta > 0 and first_v >= 0:
        to_zero = sampled * (first_v / delta)
        to_start = min(to_start, to_zero)
    # Extrapolate to an edge only when the series plausibly covered it (the gap is no longer than usual).
    threshold = average_gap * 1.1
    covered = sampled
    covered += to_start if to_start < threshold else average_gap / 2
    covered += to_end if to_end < threshold else average_gap / 2
    result = delta * (covered / sampled)
    return result / (end - start) if per_second else result


# -- histograms -------------------------------------------------------------------------------------------------


def histogram_quantile(phi: float, vector: Vector) -> Vector:
    """The φ-quantile of each classic histogram (``le`` buckets of one label set), interpolated linearly."""
    histograms: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for sample in vector:
        raw = sample.labels.get("le")
        if raw is None:
            continue
        try:
            bound = float(raw.replace("Inf", "inf"))
        except ValueError:
            continue
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("le", NAME)))
        histograms.setdefault(key, []).append((bound, sample.value))
    return [Sample(dict(key), bucket_quantile(phi, buckets)) for key, buckets in histograms.items()]


def bucket_quantile(phi: float, buckets: list[tuple[float, float]]) -> float:
    """The quantile of (upper bound, cumulative count) buckets, the way PromQL estimates it."""
    if math.isnan(phi):
        return math.nan
    if phi < 0:
        return -math.inf
    if phi > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    # Counts are cumulative; rate() over scrapes of different moments can leave small dents: flatten them.
    running = 0.0
    ordered = [(bound, running := max(running, count)) for bound, count in ordered]
    total = ordered[-1][1]
    if total == 0 or math.isnan(total):
        return math.nan
    rank = phi * total
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper, count = ordered[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else ordered[index - 1]
    in_bucket = count - below
    return lower + (upper - lower) * ((rank - below) / in_bucket) if in_bucket else upper


def evaluate(expr: Expr, store: SampleStore, at: float) -> Value:
    """Evaluate ``expr`` at ``at``; PromQLError(kind="execution") when the data make it impossible."""
    return Evaluator(store, at).eval(expr)
