"""The Gateway API types a Canary embeds (``service.gatewayRefs``, ``service.mirror``), shaped like v1's.

Only the fields Flagger exposes are modelled; the full HTTPRoute stays a plain dict in the routing layer.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flaggerpy.apis.base import ApiModel

_DNS_SUBDOMAIN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_KIND = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SECTION = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

PortNumber = Annotated[int, Field(ge=1, le=65535)]


class ParentReference(ApiModel):
    """A Gateway (or, for GAMMA, a Service) the generated HTTPRoute attaches to; Gateway API ``ParentReference``."""

    group: Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)] | None = Field(
        default=None, description="API group of the parent; defaults to gateway.networking.k8s.io."
    )
    kind: Annotated[str, Field(min_length=1, max_length=63, pattern=_KIND)] | None = Field(
        default=None, description="Kind of the parent; defaults to Gateway."
    )
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)] | None = Field(
        default=None, description="Namespace of the parent; defaults to the Canary's namespace."
    )
    name: Annotated[str, Field(min_length=1, max_length=253)] = Field(description="Name of the parent.")
    section_name: Annotated[str, Field(min_length=1, max_length=253, pattern=_SECTION)] | None = Field(
        default=None, description="A listener of the Gateway to attach to (all listeners when unset)."
    )
    port: PortNumber | None = Field(default=None, description="Attach only to listeners on this port.")


class BackendObjectReference(ApiModel):
    """Where mirrored requests go; Gateway API ``BackendObjectReference``."""

    group: Annotated[str, Field(max_length=253, pattern=_DNS_SUBDOMAIN)] | None = Field(
        default=None, description='API group of the backend; "" (core) for a Service.'
    )
    kind: Annotated[str, Field(min_length=1, max_length=63, pattern=_KIND)] | None = Field(
        default=None, description="Kind of the backend; defaults to Service."
    )
    name: Annotated[str, Field(min_length=1, max_length=253)] = Field(description="Name of the backend.")
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)] | None = Field(
        default=None, description="Namespace of the backend; defaults to the route's."
    )
    port: PortNumber | None = Field(default=None, description="Port of the backend; required for a Service.")


class Fraction(ApiModel):
    """A share of requests: ``numerator / denominator``."""

    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] | None = None


class HTTPRequestMirrorFilter(ApiModel):
    """Copy requests to another backend (responses are discarded); Gateway API ``HTTPRequestMirrorFilter``."""

    backend_ref: BackendObjectReference = Field(description="The backend that receives the copies.")
    percent: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="Share of requests to mirror, in percent (all when unset)."
    )
    fraction: Fraction | None = Field(default=None, description="Share of requests to mirror, as a fraction.")
