"""A Prometheus query API (parser, evaluator, sample store) over the data plane's counters."""
