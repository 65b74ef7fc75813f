"""Decoding of the Kubernetes protobuf bodies that kubectl's imperative commands send.

``kubectl create namespace|configmap|secret|serviceaccount|deployment|service`` post protobuf (``k8s\\0`` + a
``runtime.Unknown`` envelope) rather than JSON. The sandbox speaks JSON, so it turns those few kinds into the JSON
objects they stand for, using the field numbers of Kubernetes' ``generated.proto``. Go emits zero values of
non-pointer fields, so an unknown field that is empty is ignored; an unknown field with content is refused with a
415 rather than silently dropped.
"""

from __future__ import annotations

import base64
from typing import Any

from flaggerpy.sandbox.apiserver.errors import StatusError

MAGIC = b"k8s\x00"

# message name -> field number -> (json name, kind, nested message name)
# kinds: s string, b bytes, i int, t bool, m message, ms map<string,string>, mb map<string,bytes>,
#        rs repeated string, rm repeated message, ios IntOrString
Schema = dict[int, tuple[str, str, str]]
MESSAGES: dict[str, Schema] = {
    "Unknown": {1: ("typeMeta", "m", "TypeMeta"), 2: ("raw", "b", ""), 3: ("contentEncoding", "s", ""),
                4: ("contentType", "s", "")},
    "TypeMeta": {1: ("apiVersion", "s", ""), 2: ("kind", "s", "")},
    "ObjectMeta": {1: ("name", "s", ""), 2: ("generateName", "s", ""), 3: ("namespace", "s", ""),
                   11: ("labels", "ms", ""), 12: ("annotations", "ms", ""),
                   13: ("ownerReferences", "rm", "OwnerReference"), 14: ("finalizers", "rs", "")},
    "OwnerReference": {1: ("kind", "s", ""), 3: ("name", "s", ""), 4: ("uid", "s", ""), 5: ("apiVersion", "s", ""),
                       6: ("controller", "t", ""), 7: ("blockOwnerDeletion", "t", "")},
    "Namespace": {1: ("metadata", "m", "ObjectMeta"), 2: ("spec", "m", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "rs", "")},
    "ConfigMap": {1: ("metadata", "m", "ObjectMeta"), 2: ("data", "ms", ""), 3: ("binaryData", "mb", ""),
                  4: ("immutable", "t", "")},
    "Secret": {1: ("metadata", "m", "ObjectMeta"), 2: ("data", "mb", ""), 3: ("type", "s", ""),
               4: ("stringData", "ms", ""), 5: ("immutable", "t", "")},
    "ServiceAccount": {1: ("metadata", "m", "ObjectMeta"), 3: ("imagePullSecrets", "rm", "LocalObjectReference"),
                       4: ("automountServiceAccountToken", "t", "")},
    "LocalObjectReference": {1: ("name", "s", "")},
    "Service": {1: ("metadata", "m", "ObjectMeta"), 2: ("spec", "m", "ServiceSpec")},
    "ServiceSpec": {1: ("ports", "rm", "ServicePort"), 2: ("selector", "ms", ""), 3: ("clusterIP", "s", ""),
                    4: ("type", "s", ""), 10: ("externalName", "s", "")},
    "ServicePort": {1: ("name", "s", ""), 2: ("protocol", "s", ""), 3: ("port", "i", ""),
                    4: ("targetPort", "ios", ""), 5: ("nodePort", "i", ""), 6: ("appProtocol", "s", "")},
    "Deployment": {1: ("metadata", "m", "ObjectMeta"), 2: ("spec", "m", "DeploymentSpec")},
    "DeploymentSpec": {1: ("replicas", "i", ""), 2: ("selector", "m", "LabelSelector"),
                       3: ("template", "m", "PodTemplateSpec"), 4: ("strategy", "m", "DeploymentStrategy"),
                       5: ("minReadySeconds", "i", ""), 6: ("revisionHistoryLimit", "i", ""),
                       7: ("paused", "t", ""), 9: ("progressDeadlineSeconds", "i", "")},
    "DeploymentStrategy": {1: ("type", "s", ""), 2: ("rollingUpdate", "m", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "ios", ""), 2: ("maxSurge", "ios", "")},
    "LabelSelector": {1: ("matchLabels", "ms", ""), 2: ("matchExpressions", "rm", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "s", ""), 2: ("operator", "s", ""), 3: ("values", "rs", "")},
    "PodTemplateSpec": {1: ("metadata", "m", "ObjectMeta"), 2: ("spec", "m", "PodSpec")},
    "PodSpec": {2: ("containers", "rm", "Container"), 3: ("restartPolicy", "s", ""),
                4: ("terminationGracePeriodSeconds", "i", ""), 6: ("dnsPolicy", "s", ""),
                7: ("nodeSelector", "ms", ""), 8: ("serviceAccountName", "s", "")},
    "Container": {1: ("name", "s", ""), 2: ("image", "s", ""), 3: ("command", "rs", ""), 4: ("args", "rs", ""),
                  5: ("workingDir", "s", ""), 6: ("ports", "rm", "ContainerPort"), 7: ("env", "rm", "EnvVar"),
                  14: ("imagePullPolicy", "s", "")},
    "ContainerPort": {1: ("name", "s", ""), 2: ("hostPort", "i", ""), 3: ("containerPort", "i", ""),
                      4: ("protocol", "s", ""), 5: ("hostIP", "s", "")},
    "EnvVar": {1: ("name", "s", ""), 2: ("value", "s", "")},
    "IntOrString": {1: ("type", "i", ""), 2: ("intVal", "i", ""), 3: ("strVal", "s", "")},
}
KINDS = frozenset({"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment", "Service"})


def _refuse(message: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       f"{message}; the flaggerpy sandbox decodes protobuf only for kubectl's create "
                       f"{'/'.join(sorted(k.lower() for k in KINDS))}: send JSON (kubectl apply -f) instead")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _refuse("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples; length-delimited values stay bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
            continue
        if wire == 2:
            size, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise _refuse(f"unsupported protobuf wire type {wire}")
        if pos + size > len(data):
            raise _refuse("truncated protobuf field")
        payload, pos = data[pos:pos + size], pos + size
        out.append((number, wire, payload))
    return out


def _empty(value: Any) -> bool:
    """Zero, empty, or a nested message of nothing but zeros (Go marshals unset non-pointer structs that way)."""
    if value in (0, b"", "", False):
        return True
    if not isinstance(value, bytes):
        return False
    try:
        return all(_empty(v) for _, _, v in _fields(value))
    except StatusError:
        return False


def _map_entry(data: bytes, as_bytes: bool) -> tuple[str, str]:
    entry = {n: v for n, _, v in _fields(data)}
    key = bytes(entry.get(1, b"")).decode()
    raw = bytes(entry.get(2, b""))
    return key, base64.b64encode(raw).decode() if as_bytes else raw.decode()


def decode_message(data: bytes, name: str) -> Any:
    """Decode ``data`` as message ``name`` into its JSON shape, leaving out zero values (omitempty)."""
    schema = MESSAGES[name]
    result: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        spec = schema.get(number)
        if spec is None:
            if _empty(value):
                continue
            raise _refuse(f"protobuf field {number} of {name} is not supported")
        field, kind, nested = spec
        if kind == "s":
            text = bytes(value).decode()
            if text:
                result[field] = text
        elif kind == "b":
            result[field] = bytes(value)
        elif kind == "i":
            if wire != 0:
                raise _refuse(f"protobuf field {number} of {name} should be a varint")
            if value:
                result[field] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "t":
            if value:
                result[field] = True
        elif kind in ("ms", "mb"):
            key, item = _map_entry(bytes(value), kind == "mb")
            result.setdefault(field, {})[key] = item
        elif kind == "rs":
            result.setdefault(field, []).append(bytes(value).decode())
        elif kind == "rm":
            result.setdefault(field, []).append(decode_message(bytes(value), nested))
        elif kind == "ios":
            ios = decode_message(bytes(value), "IntOrString")
            result[field] = ios.get("strVal", "") if ios.get("type") == 1 else ios.get("intVal", 0)
        else:
            decoded = decode_message(bytes(value), nested)
            if decoded:
                result[field] = decoded
    return result


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a Kubernetes protobuf request body stands for; 415 for kinds the sandbox cannot decode."""
    if not body.startswith(MAGIC):
        raise _refuse("the body is not a Kubernetes protobuf envelope")
    envelope = decode_message(body[len(MAGIC):], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise _refuse(f"protobuf bodies of kind {kind or '(none)'!r} are not supported")
    obj = decode_message(envelope.get("raw", b""), kind)
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
