"""The protobuf bodies kubectl's imperative create commands send are understood, or refused clearly."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.protobuf import decode

# Captured from `kubectl create configmap c --from-literal=a=b` (kubectl 1.32).
CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a016312001a0022002a0032003800420012060a01611201621a002200"
)


def test_configmap_from_kubectl_decodes_to_json() -> None:
    assert decode(CONFIGMAP) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                 "data": {"a": "b"}}


def test_unsupported_kind_is_a_415_naming_it() -> None:
    body = CONFIGMAP.replace(b"\x12\tConfigMap", b"\x12\tConfigMop")
    with pytest.raises(StatusError) as err:
        decode(body)
    assert err.value.code == 415 and "'ConfigMop'" in err.value.message and "kubectl apply" in err.value.message


@pytest.mark.parametrize("body", [b"not protobuf", b"k8s\x00\x0a\xff", b"k8s\x00\x0f", b"k8s\x00\x0a\x09\x0a"])
def test_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(StatusError) as err:
        decode(body)
    assert err.value.code == 415
