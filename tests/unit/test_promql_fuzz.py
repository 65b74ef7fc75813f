"""Whatever text arrives as a query, the sandbox's PromQL answers or refuses it: it never crashes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flaggerpy.sandbox.promql.parse import PromQLError
from flaggerpy.sandbox.promql.server import PromQLServer

EXPOSITION = 'x{a="1",le="1"} 1\nx{a="2",le="+Inf"} 3\ny{a="1"} 2\n'
_PIECES = ["x", "y", "{", "}", "(", ")", "[", "]", "5m", "1s", "a", "=", "!=", "=~", "!~", '"1"', '".*"', ",",
           "+", "-", "*", "/", "%", "^", "==", ">", "<=", "bool", "and", "or", "unless", "on", "ignoring", "by",
           "without", "sum", "avg", "count", "max", "rate", "irate", "increase", "histogram_quantile", "scalar",
           "vector", "offset", "0.5", "1e3", "NaN", "Inf", "0x1f", "le", "topk", "@", ":", "group_left", " "]


def _server() -> PromQLServer:
    clock = iter(float(t) for t in range(1000, 2000))
    server = PromQLServer(lambda: EXPOSITION, clock=lambda: next(clock))
    for _ in range(3):
        server.scrape()
    return server


SERVER = _server()


def _answer_or_refuse(query: str) -> None:
    try:
        data = SERVER.query(query, at=1002.0)
    except PromQLError as exc:
        assert str(exc)
        assert exc.kind in ("bad_data", "execution")
        return
    assert data["resultType"] in ("scalar", "vector", "matrix")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14), st.sampled_from(["", " "]))
def test_token_soup_is_answered_or_refused(pieces: list[str], separator: str) -> None:
    _answer_or_refuse(separator.join(pieces))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_is_answered_or_refused(query: str) -> None:
    _answer_or_refuse(query)
