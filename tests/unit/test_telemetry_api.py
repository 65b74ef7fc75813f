"""Every API request the kube client reports is counted by verb, resource and code; failures once more."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.telemetry import Recorder


def samples(recorder: Recorder) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(recorder.exposition().decode()):
        for sample in family.samples:
            if sample.name.startswith("flaggerpy_api_"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_requests_and_errors_are_counted_per_verb_resource_and_code() -> None:
    recorder = Recorder()
    for _ in range(3):
        recorder.observe_api_request("update", "canaries.flagger.app/status", 200, 0.01)
    recorder.observe_api_request("update", "canaries.flagger.app/status", 409, 0.01)
    recorder.observe_api_request("get", "leases.coordination.k8s.io", 0, 5.0)
    recorder.observe_api_request("get", "leases.coordination.k8s.io", 0, 5.0)
    got = samples(recorder)

    def labels(verb: str, resource: str, code: str) -> tuple[tuple[str, str], ...]:
        return (("code", code), ("resource", resource), ("verb", verb))

    status = "canaries.flagger.app/status"
    assert got[("flaggerpy_api_requests_total", labels("update", status, "200"))] == 3
    assert got[("flaggerpy_api_requests_total", labels("update", status, "409"))] == 1
    assert got[("flaggerpy_api_errors_total", labels("update", status, "409"))] == 1
    assert ("flaggerpy_api_errors_total", labels("update", status, "200")) not in got
    assert got[("flaggerpy_api_errors_total", labels("get", "leases.coordination.k8s.io", "0"))] == 2
