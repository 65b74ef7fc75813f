"""Typed models of Flagger's ``flagger.app/v1beta1`` API: Canary, MetricTemplate and AlertProvider.

Every field Flagger accepts is accepted here, so manifests written for Flagger load unchanged; fields that only a
mesh or ingress provider uses (Istio ``trafficPolicy``, App Mesh ``backends``, ...) are kept but have no effect with
Gateway API routing. flaggerpy's own additions are marked "flaggerpy extension" in their descriptions.

``Canary.from_dict`` is the entry point: it parses a raw Kubernetes object and raises :class:`SpecError` listing
every problem, each named by its JSON path (``spec.analysis.stepWeight: must be > 0``).
"""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from flaggerpy.apis.base import ApiModel, Duration, IntOrString, PositiveDuration, Time
from flaggerpy.apis.durations import parse_duration
from flaggerpy.apis.errors import FieldError, SpecError, from_validation_error
from flaggerpy.apis.gatewayapi import HTTPRequestMirrorFilter, ParentReference
from flaggerpy.apis.lenient import parse_leniently, unaffected

API_GROUP = "flagger.app"
API_VERSION = "v1beta1"

# Flagger's defaults for unset fields: the one place they are written down (the engine's Plan, the route builders
# and the template renderer read them from here).
PROGRESS_DEADLINE_SECONDS = 600
FAILED_CHECKS_THRESHOLD = 1
ANALYSIS_INTERVAL = "1m"
METRIC_INTERVAL = "1m"
WEBHOOK_TIMEOUT = "10s"
TOTAL_WEIGHT = 100
READY_THRESHOLD = 100
SESSION_COOKIE_MAX_AGE = 86400
METRIC_HISTORY_LIMIT = 30

BUILTIN_METRICS = ("request-success-rate", "request-duration")
GATEWAY_PROVIDERS: dict[str, str] = {"gatewayapi": "v1", "gatewayapi:v1": "v1", "gatewayapi:v1beta1": "v1beta1"}
"""The ``spec.provider`` values this controller serves, each with the HTTPRoute API version it routes with (an
unset provider means ``gatewayapi``)."""


class Strategy(enum.StrEnum):
    """How a release is rolled out, derived from ``spec.analysis`` like Flagger does; the values are Flagger's
    (its ``deployment_strategy`` metric label), mirroring being a blue/green with ``analysis.mirror``."""

    CANARY = "canary"
    """Progressive traffic shifting by ``stepWeight``/``stepWeights`` up to ``maxWeight``."""
    AB = "ab-testing"
    """A/B testing: requests matching ``analysis.match`` go to the canary for ``iterations`` intervals."""
    BLUE_GREEN = "blue-green"
    """Blue/green: the canary gets test traffic only, for ``iterations`` intervals, then all traffic at once."""
    MIRROR = "mirror"
    """Blue/green with mirroring: primary traffic is copied to the canary during the ``iterations``."""


# --- shared references and metadata -------------------------------------------------------------------------------


class LocalObjectReference(ApiModel):
    """A reference to an object in the Canary's namespace."""

    api_version: str | None = Field(default=None, description="API version of the referent, e.g. apps/v1.")
    kind: str | None = Field(default=None, description="Kind of the referent.")
    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the referent.")


class CrossNamespaceObjectReference(ApiModel):
    """A reference to an object that may live in another namespace (defaults to the Canary's)."""

    api_version: str | None = Field(default=None, description="API version of the referent.")
    kind: str | None = Field(default=None, description="Kind of the referent.")
    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the referent.")
    namespace: str | None = Field(default=None, description="Namespace of the referent.")


class SecretReference(ApiModel):
    """A Secret in the same namespace as the referring object."""

    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the Secret.")


class ScalerReplicas(ApiModel):
    """Replica bounds for the primary's autoscaler."""

    min_replicas: Annotated[int, Field(ge=1)] | None = Field(default=None, description="Minimum replicas.")
    max_replicas: Annotated[int, Field(ge=1)] | None = Field(default=None, description="Maximum replicas.")


AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")


class AutoscalerReference(ApiModel):
    """The HorizontalPodAutoscaler (or KEDA ScaledObject) of the target; Flagger copies it for the primary."""

    api_version: str | None = Field(default=None, description="API version, e.g. autoscaling/v2.")
    kind: str | None = Field(default=None, description="HorizontalPodAutoscaler or ScaledObject.")
    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the autoscaler.")
    primary_scaler_queries: dict[str, str] | None = Field(
        default=None, description="ScaledObject trigger queries to use for the primary, by trigger name."
    )
    primary_scaler_replicas: ScalerReplicas | None = Field(
        default=None, description="Replica bounds for the primary's autoscaler (defaults to the target's)."
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str | None) -> str | None:
        # Any other kind would leave the primary without an autoscaler while the target's keeps scaling the canary.
        if kind is not None and kind not in AUTOSCALER_KINDS:
            raise ValueError(f"must be {' or '.join(AUTOSCALER_KINDS)} (got {kind!r})")
        return kind

    @property
    def scaler_kind(self) -> str:
        """The referenced kind, HorizontalPodAutoscaler when unset."""
        return self.kind or AUTOSCALER_KINDS[0]


class CustomMetadata(ApiModel):
    """Labels and annotations to set on a generated object."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class UnmanagedMetadata(ApiModel):
    """Label and annotation keys other controllers own on generated objects; never overwritten or removed."""

    annotations: list[str] | None = None
    labels: list[str] | None = None


# --- HTTP routing (Istio shapes, as Flagger's API uses them) --------------------------------------------------------


class StringMatch(ApiModel):
    """Match a string exactly, by prefix, by suffix or by an RE2 regular expression; set exactly one."""

    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("exact", "prefix", "suffix", "regex") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of exact, prefix, suffix, regex (got {', '.join(given)})")
        return self

    @property
    def kind(self) -> str | None:
        """Which of exact/prefix/suffix/regex is set, or None for an empty match (matches anything)."""
        for key in ("exact", "prefix", "suffix", "regex"):
            if getattr(self, key) is not None:
                return key
        return None

    @property
    def value(self) -> str | None:
        """The string to match, whatever the kind."""
        kind = self.kind
        return None if kind is None else getattr(self, kind)


class HTTPMatchRequest(ApiModel):
    """Conditions a request must meet, all of them (Istio ``HTTPMatchRequest``); used by A/B testing."""

    name: str | None = Field(default=None, description="Name of the match, for logs.")
    uri: StringMatch | None = Field(default=None, description="Match on the request path.")
    scheme: StringMatch | None = Field(default=None, description="Match on the URI scheme.")
    method: StringMatch | None = Field(default=None, description="Match on the HTTP method.")
    authority: StringMatch | None = Field(default=None, description="Match on the Host/authority.")
    headers: dict[str, StringMatch] | None = Field(
        default=None, description="Match on request headers (header names in lower case); a cookie is a header."
    )
    query_params: dict[str, StringMatch] | None = Field(default=None, description="Match on query parameters.")
    without_headers: dict[str, StringMatch] | None = Field(
        default=None, description="Match when these headers do NOT match (Istio only)."
    )
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(default=None, description="Match on the port.")
    source_labels: dict[str, str] | None = Field(default=None, description="Match on source workload labels.")
    source_namespace: str | None = Field(default=None, description="Match on the source namespace.")
    gateways: list[str] | None = Field(default=None, description="Istio gateway names the match applies to.")
    ignore_uri_case: bool | None = Field(default=None, description="Match the URI case-insensitively.")


class HTTPRewrite(ApiModel):
    """Rewrite the path and/or Host header before forwarding."""

    uri: str | None = Field(default=None, description="New path (or prefix, with type ReplacePrefixMatch).")
    authority: str | None = Field(default=None, description="New Host/authority header.")
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"] | None = Field(
        default=None, description="Gateway API path modifier; ReplaceFullPath when unset."
    )

    @property
    def path_modifier(self) -> str:
        """The Gateway API path modifier type to use."""
        return self.type or "ReplaceFullPath"


class HTTPRetry(ApiModel):
    """Retry policy for requests through the generated route."""

    attempts: Annotated[int, Field(ge=0)] | None = Field(default=None, description="Number of retries.")
    per_try_timeout: Duration | None = Field(default=None, description="Timeout per attempt, e.g. 5s.")
    retry_on: str | None = Field(default=None, description="Conditions to retry on (Envoy retry-on values).")


class HeaderOperations(ApiModel):
    """Header edits: add (append), set (overwrite) and remove."""

    add: dict[str, str] | None = None
    set: dict[str, str] | None = None
    remove: list[str] | None = None


class Headers(ApiModel):
    """Header edits on requests (before forwarding) and responses (before returning)."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class CorsPolicy(ApiModel):
    """Cross-origin resource sharing policy (Istio ``CorsPolicy``); not applied by Gateway API routing."""

    allow_origin: list[str] | None = None
    allow_origins: list[StringMatch] | None = None
    allow_methods: list[str] | None = None
    allow_headers: list[str] | None = None
    expose_headers: list[str] | None = None
    max_age: str | None = None
    allow_credentials: bool | None = None


class CanaryService(ApiModel):
    """The apex/primary/canary Services flaggerpy generates and how their traffic is routed."""

    name: str | None = Field(default=None, description="Name of the apex Service; defaults to targetRef.name.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(description="Port of the generated Services.")
    port_name: str | None = Field(default=None, description="Name of the Service port; defaults to http.")
    target_port: IntOrString | None = Field(
        default=None, description="Container port number or name; defaults to port."
    )
    app_protocol: str | None = Field(default=None, description="appProtocol of the Service port.")
    traffic_distribution: str | None = Field(
        default=None, description="spec.trafficDistribution of the generated Services (PreferClose, ...)."
    )
    port_discovery: bool = Field(default=False, description="Add every container port to the Services.")
    headless: bool | None = Field(default=None, description="Generate headless primary/canary Services.")
    timeout: Duration | None = Field(default=None, description="Request timeout on the route, e.g. 30s.")
    backend_timeout: Duration | None = Field(
        default=None, description="Timeout for one backend request (Gateway API timeouts.backendRequest)."
    )
    gateways: list[str] | None = Field(default=None, description="Istio gateways (Istio only).")
    gateway_refs: Annotated[list[ParentReference], Field(max_length=32)] | None = Field(
        default=None, description="Gateways the generated HTTPRoute attaches to (its parentRefs)."
    )
    hosts: list[str] | None = Field(default=None, description="Hostnames of the generated HTTPRoute.")
    delegation: bool | None = Field(default=None, description="Istio VirtualService delegation (Istio only).")
    traffic_policy: dict[str, Any] | None = Field(
        default=None, description="Istio DestinationRule traffic policy (Istio only; kept as written)."
    )
    match: list[HTTPMatchRequest] | None = Field(default=None, description="Match conditions of the route.")
    rewrite: HTTPRewrite | None = Field(default=None, description="URL rewrite applied by the route.")
    retries: HTTPRetry | None = Field(default=None, description="Retry policy of the route.")
    headers: Headers | None = Field(default=None, description="Header edits applied by the route.")
    mirror: list[HTTPRequestMirrorFilter] | None = Field(
        default=None, description="Extra backends that receive copies of the route's requests."
    )
    cors_policy: CorsPolicy | None = Field(default=None, description="CORS policy (Istio only).")
    mesh_name: str | None = Field(default=None, description="App Mesh mesh name (App Mesh only).")
    backends: list[str] | None = Field(default=None, description="App Mesh backends (App Mesh only).")
    apex: CustomMetadata | None = Field(default=None, description="Labels/annotations for the apex Service.")
    primary: CustomMetadata | None = Field(default=None, description="Labels/annotations for the primary Service.")
    canary: CustomMetadata | None = Field(default=None, description="Labels/annotations for the canary Service.")
    unmanaged_metadata: UnmanagedMetadata | None = Field(
        default=None, description="Metadata keys on generated objects that flaggerpy must leave alone."
    )


# --- analysis ----------------------------------------------------------------------------------------------------


class ThresholdRange(ApiModel):
    """The accepted range of a metric's value; a check passes when min <= value <= max."""

    min: float | None = Field(default=None, description="Lowest accepted value.")
    max: float | None = Field(default=None, description="Highest accepted value.")


class CanaryMetric(ApiModel):
    """One metric check run at every analysis interval."""

    name: Annotated[str, Field(min_length=1)] = Field(
        description="Name of the check; request-success-rate and request-duration are builtin."
    )
    interval: PositiveDuration | None = Field(default=None, description="Query window, e.g. 1m (default 1m).")
    threshold: float | None = Field(
        default=None, description="Deprecated: use thresholdRange. A min for success rate, else a max."
    )
    threshold_range: ThresholdRange | None = Field(default=None, description="Accepted range of the value.")
    query: str | None = Field(default=None, description="Deprecated: a Prometheus query; use templateRef.")
    template_ref: CrossNamespaceObjectReference | None = Field(
        default=None, description="The MetricTemplate that holds the query and its provider."
    )
    template_variables: dict[str, str] | None = Field(
        default=None, description="Extra variables for the template's query ({{ variables.key }})."
    )
    on_no_data: Literal["fail", "skip"] | None = Field(
        default=None,
        description="flaggerpy extension: what a query that returns no data means, fail (default) or skip the check.",
    )
    dry_run: bool | None = Field(
        default=None,
        description="flaggerpy extension: measure and report the metric but never fail the analysis on it.",
    )

    @property
    def interval_text(self) -> str:
        """The query window as written, ``1m`` when unset (rendered into ``{{ interval }}``)."""
        return self.interval or METRIC_INTERVAL

    @property
    def interval_seconds(self) -> float:
        """The query window in seconds."""
        return parse_duration(self.interval_text, "interval")

    @property
    def is_builtin(self) -> bool:
        """A builtin check (no template, no query) computed from the provider's request metrics."""
        return self.template_ref is None and not self.query and self.name in BUILTIN_METRICS

    @property
    def effective_range(self) -> ThresholdRange:
        """``thresholdRange``, or the range the deprecated ``threshold`` stands for (a min for success rate)."""
        if self.threshold_range is not None:
            return self.threshold_range
        if self.threshold is None:
            return ThresholdRange()
        if self.name == "request-success-rate":
            return ThresholdRange(min=self.threshold)
        return ThresholdRange(max=self.threshold)

    @property
    def skip_on_no_data(self) -> bool:
        """True when a query without data skips this check instead of failing it."""
        return self.on_no_data == "skip"


WebhookType = Literal[
    "",
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
]


class CanaryWebhook(ApiModel):
    """An HTTP hook called at a stage of the release (see ``type``)."""

    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the webhook.")
    type: WebhookType | None = Field(default=None, description="When it runs; rollout when unset.")
    url: Annotated[str, Field(min_length=1)] = Field(description="URL to POST the payload to.")
    mute_alert: bool | None = Field(default=None, description="Send no alert when this hook fails.")
    timeout: PositiveDuration | None = Field(default=None, description="Request timeout, e.g. 30s (default 10s).")
    metadata: dict[str, str] | None = Field(default=None, description="Key/value pairs sent in the payload.")
    retries: Annotated[int, Field(ge=0)] | None = Field(default=None, description="Retries on failure.")
    disable_tls: bool | None = Field(default=None, alias="disableTLS", description="Skip TLS certificate verification.")

    @property
    def hook_type(self) -> str:
        """The webhook type, with Flagger's default ``rollout`` for an empty one."""
        return self.type or "rollout"

    @property
    def timeout_seconds(self) -> float:
        """Request timeout in seconds (10 when unset)."""
        return parse_duration(self.timeout or WEBHOOK_TIMEOUT, "timeout")


class CanaryAlert(ApiModel):
    """Where to send alerts about this canary."""

    name: Annotated[str, Field(min_length=1)] = Field(description="Name of the alert.")
    severity: Literal["", "info", "warn", "error"] | None = Field(
        default=None, description="Lowest severity sent: info (default), warn or error."
    )
    provider_ref: CrossNamespaceObjectReference = Field(description="The AlertProvider to send through.")

    @property
    def min_severity(self) -> str:
        """The lowest severity this alert admits (``info`` when unset)."""
        return self.severity or "info"


class SessionAffinity(ApiModel):
    """Keep a user on the version they first reached during the analysis, by cookie."""

    cookie_name: str | None = Field(default=None, description="Cookie that pins users to the canary.")
    primary_cookie_name: str | None = Field(default=None, description="Cookie that pins users to the primary.")
    domain: str | None = Field(default=None, description="Cookie Domain attribute.")
    http_only: bool | None = Field(default=None, description="Cookie HttpOnly attribute.")
    max_age: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Cookie lifetime in seconds (default 86400)."
    )
    partitioned: bool | None = Field(default=None, description="Cookie Partitioned attribute.")
    path: str | None = Field(default=None, description="Cookie Path attribute.")
    same_site: Literal["Strict", "Lax", "None"] | None = Field(default=None, description="Cookie SameSite.")
    secure: bool | None = Field(default=None, description="Cookie Secure attribute.")

    @property
    def effective_max_age(self) -> int:
        """Cookie lifetime in seconds, Flagger's 86400 when unset."""
        return self.max_age or SESSION_COOKIE_MAX_AGE

    def cookie_attributes(self, max_age: int | None = None) -> str:
        """The ``Set-Cookie`` attributes after ``name=value`` (``Max-Age=86400; Path=/; Secure``)."""
        parts = [f"Max-Age={self.effective_max_age if max_age is None else max_age}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.partitioned:
            parts.append("Partitioned")
        if self.path:
            parts.append(f"Path={self.path}")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


Percent = Annotated[int, Field(ge=0, le=100)]


def _weight(value: int) -> int:
    if not 1 <= value <= TOTAL_WEIGHT:
        raise ValueError("must be between 1 and 100")
    return value


def _step(value: int) -> int:
    if value <= 0:
        raise ValueError("must be > 0")
    return _weight(value)


Weight = Annotated[
    int, AfterValidator(_weight), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": TOTAL_WEIGHT})
]
"""A traffic percentage between 1 and 100."""

Step = Annotated[int, AfterValidator(_step), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": TOTAL_WEIGHT})]
"""A weight increment between 1 and 100."""


class CanaryAnalysis(ApiModel):
    """How a new revision is analysed and how traffic moves to it."""

    interval: PositiveDuration | None = Field(default=None, description="Time between analysis steps (default 1m).")
    iterations: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Number of analysis runs for A/B testing and blue/green."
    )
    mirror: bool | None = Field(
        default=None, description="Mirror primary traffic to the canary (blue/green, or canary with mirrorWeight)."
    )
    mirror_weight: Percent | None = Field(default=None, description="Percentage of traffic to mirror.")
    max_weight: Weight | None = Field(default=None, description="Highest canary weight before promotion.")
    step_weight: Step | None = Field(default=None, description="Canary weight increment per step.")
    step_weights: list[Weight] | None = Field(default=None, description="Explicit increasing canary weights.")
    step_weight_promotion: Step | None = Field(
        default=None, description="Primary weight increment per step while promoting (all at once when unset)."
    )
    threshold: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Failed checks tolerated before rollback (default 1)."
    )
    primary_ready_threshold: Percent | None = Field(
        default=None, description="Percentage of primary pods that must be ready (default 100)."
    )
    canary_ready_threshold: Percent | None = Field(
        default=None, description="Percentage of canary pods that must be ready (default 100)."
    )
    alerts: list[CanaryAlert] | None = Field(default=None, description="Alerts for this canary.")
    metrics: list[CanaryMetric] | None = Field(default=None, description="Metric checks run at every step.")
    webhooks: list[CanaryWebhook] | None = Field(default=None, description="Webhooks run at the release stages.")
    match: list[HTTPMatchRequest] | None = Field(
        default=None, description="A/B testing: requests matching any of these go to the canary."
    )
    session_affinity: SessionAffinity | None = Field(
        default=None, description="Pin users to canary or primary by cookie during the analysis."
    )


# --- spec, status, object ----------------------------------------------------------------------------------------


class CanarySpec(ApiModel):
    """The desired release process for one workload."""

    provider: str | None = Field(
        default=None, description="Routing provider; gatewayapi (=gatewayapi:v1) or gatewayapi:v1beta1."
    )
    metrics_server: str | None = Field(default=None, description="Prometheus URL for builtin metrics.")
    target_ref: LocalObjectReference = Field(description="The Deployment or DaemonSet to release.")
    autoscaler_ref: AutoscalerReference | None = Field(default=None, description="Autoscaler of the target.")
    ingress_ref: LocalObjectReference | None = Field(default=None, description="NGINX Ingress (nginx only).")
    route_ref: LocalObjectReference | None = Field(default=None, description="APISIX route (apisix only).")
    upstream_ref: CrossNamespaceObjectReference | None = Field(default=None, description="Gloo upstream (gloo only).")
    service: CanaryService = Field(description="Generated Services and routing.")
    analysis: CanaryAnalysis | None = Field(default=None, description="The analysis and traffic schedule.")
    progress_deadline_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Seconds a step may take before the release fails (default 600)."
    )
    skip_analysis: bool | None = Field(default=None, description="Promote new revisions without analysis.")
    revert_on_deletion: bool | None = Field(
        default=None, description="Restore the target and remove generated objects when the Canary is deleted."
    )
    suspend: bool | None = Field(default=None, description="Pause all work on this canary.")

    canary_analysis: CanaryAnalysis | None = Field(
        default=None,
        exclude=True,
        description="Deprecated: Flagger's old name for analysis; read into analysis when analysis is unset.",
    )

    @model_validator(mode="after")
    def _legacy_analysis(self) -> Self:
        # The engine reads spec.analysis only; a manifest with the deprecated name behaves the same.
        if self.analysis is None and self.canary_analysis is not None:
            self.analysis = self.canary_analysis
        return self

    @property
    def analysis_path(self) -> str:
        """The JSON path the user wrote the analysis under (``spec.analysis`` or ``spec.canaryAnalysis``)."""
        if self.canary_analysis is not None and self.analysis is self.canary_analysis:
            return "spec.canaryAnalysis"
        return "spec.analysis"


class CanaryCondition(ApiModel):
    """A status condition; Flagger writes one of type ``Promoted`` (flaggerpy adds ``Halted`` and ``IgnoredFields``)."""

    type: str = Field(description="Condition type, Promoted.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    last_update_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = Field(default=None, description="CamelCase reason, e.g. Progressing or Failed.")
    message: str | None = Field(default=None, description="Human-readable detail.")
    observed_generation: int | None = Field(
        default=None, description="flaggerpy extension: metadata.generation the condition was set for."
    )


class MetricSample(ApiModel):
    """flaggerpy extension: one measured metric value at one analysis step."""

    iteration: int = Field(description="Analysis step (iteration) the value belongs to.")
    weight: int = Field(description="Canary weight during the measurement.")
    name: str = Field(description="Metric check name.")
    value: float | None = Field(default=None, description="Measured value; unset when there was no data.")
    passed: bool = Field(description="Whether the value was within the thresholdRange.")
    time: Time = Field(description="When the value was measured.")
    error: str | None = Field(
        default=None, description="Why the check had no value or failed: the query's error (unreachable, ...)."
    )

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        # JSON (and so the apiserver) has no NaN or infinity; a query that yields one measured nothing usable.
        return value if value is None or math.isfinite(value) else None


class WebhookSample(ApiModel):
    """flaggerpy extension: one call of a ``rollout`` webhook at one analysis step and its result."""

    iteration: int = Field(description="Analysis step (iteration) the call belongs to.")
    weight: int = Field(description="Canary weight during the call.")
    name: str = Field(description="Webhook name.")
    passed: bool = Field(description="Whether the hook answered 2xx in time.")
    status_code: int | None = Field(default=None, description="HTTP status of the answer; unset without one.")
    time: Time = Field(description="When the hook was called.")
    error: str | None = Field(default=None, description="Why the call failed (timeout, refused, status ...).")


class CanaryStatus(ApiModel):
    """What the controller last observed and decided; the only memory of a release."""

    phase: str | None = Field(default=None, description="Phase of the release (Initializing ... Succeeded).")
    failed_checks: int = Field(default=0, description="Failed checks in the current analysis.")
    canary_weight: int = Field(default=0, description="Traffic percentage routed to the canary.")
    iterations: int = Field(default=0, description="Analysis runs done (A/B and blue/green).")
    previous_session_affinity_cookie: str | None = None
    session_affinity_cookie: str | None = None
    primary_session_affinity_cookie: str | None = None
    tracked_configs: dict[str, str] | None = Field(
        default=None, description="Checksums of the ConfigMaps and Secrets the target uses."
    )
    last_applied_spec: str | None = Field(default=None, description="Hash of the target spec being analysed.")
    last_promoted_spec: str | None = Field(default=None, description="Hash of the spec last promoted.")
    last_transition_time: Time | None = None
    conditions: list[CanaryCondition] | None = None
    observed_generation: int | None = Field(
        default=None, description="flaggerpy extension: metadata.generation this status was written for."
    )
    metric_history: list[MetricSample] | None = Field(
        default=None,
        description=f"flaggerpy extension: the last {METRIC_HISTORY_LIMIT} metric values measured.",
    )
    webhook_history: list[WebhookSample] | None = Field(
        default=None,
        description=f"flaggerpy extension: the last {METRIC_HISTORY_LIMIT} rollout webhook calls and their results.",
    )

    def condition(self, type_: str = "Promoted") -> CanaryCondition | None:
        """The condition of ``type_``, or None."""
        return next((c for c in self.conditions or () if c.type == type_), None)

    def with_samples(self, samples: list[MetricSample], limit: int = METRIC_HISTORY_LIMIT) -> list[MetricSample]:
        """``metricHistory`` with ``samples`` appended, keeping only the newest ``limit`` entries."""
        merged = [*(self.metric_history or ()), *samples]
        return merged[-limit:] if limit > 0 else []


class ObjectMeta(ApiModel, extra="allow"):
    """Kubernetes object metadata; fields not listed here are kept so a round trip loses nothing."""

    name: str = Field(default="", description="Name of the object.")
    namespace: str = Field(default="", description="Namespace of the object.")
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None


class _Resource(ApiModel):
    """A flagger.app object: apiVersion, kind, metadata."""

    api_version: str = Field(default=f"{API_GROUP}/{API_VERSION}")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def _parse(cls, obj: Any) -> Self:
        if not isinstance(obj, dict):
            raise SpecError([FieldError("<root>", "must be an object")], kind=cls.__name__)
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise SpecError(from_validation_error(exc), kind=cls.__name__) from None

    @property
    def key(self) -> str:
        """``namespace/name``, the workqueue key."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


class Canary(_Resource):
    """A ``flagger.app/v1beta1`` Canary."""

    kind: str = "Canary"
    spec: CanarySpec
    status: CanaryStatus = Field(default_factory=CanaryStatus)
    _dumped: list[Any] = PrivateAttr(default_factory=list)
    """[metadata, spec, apiVersion, kind, status, the JSON of the first four, the status's] as :meth:`to_dict` last
    dumped them; one list shared by the model's copies (``model_copy`` copies private attributes shallowly)."""

    def to_dict(self) -> dict[str, Any]:
        """The Canary as Kubernetes JSON, as :meth:`ApiModel.to_dict`, dumped again only for other metadata, spec or
        status objects than last time: a Canary is not edited once dumped (a changed status is a new copy).

        The engine attaches each reconcile's status to the model it parsed from the spec (a status-only
        ``model_copy``) and the router asks for the JSON form on every reconcile, mostly of the same status:
        dumping all of it each time was most of a no-op reconcile. The parts of the result are shared between
        calls: read them, never edit them (``copy.deepcopy`` first).
        """
        dumped = self._dumped
        if not dumped or dumped[0] is not self.metadata or dumped[1] is not self.spec or \
                dumped[2] != self.api_version or dumped[3] != self.kind:
            base = self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
            dumped[:] = (self.metadata, self.spec, self.api_version, self.kind, None, base, None)
        if dumped[4] is not self.status:
            dumped[4], dumped[6] = self.status, self.status.to_dict()
        return {**dumped[5], "status": dumped[6]}

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too: the JSON cache above is not part of a Canary's value.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__ and \
            self.__pydantic_extra__ == other.__pydantic_extra__


    @classmethod
    def from_dict(cls, obj: Any) -> Canary:
        """Parse and validate a raw Canary; :class:`SpecError` lists every problem with its JSON path."""
        # validation reads this module's constants, so it is imported when first needed, not at import time.
        from flaggerpy.apis.validation import canary_problems

        if not isinstance(obj, dict):
            raise SpecError([FieldError("<root>", "must be an object")], kind="Canary")
        canary, problems, cuts = parse_leniently(cls, obj)
        if canary is not None:
            problems += unaffected(canary_problems(canary), cuts)
        if canary is None or problems:
            raise SpecError(problems, kind="Canary")
        return canary

    def spec_warnings(self) -> list[FieldError]:
        """Fields Flagger accepts but ignores here (the engine reports them as a Warning Event, once per generation)."""
        from flaggerpy.apis.validation import canary_warnings

        return canary_warnings(self)

    # -- helpers the engine uses; pure functions of the spec --

    @property
    def analysis(self) -> CanaryAnalysis:
        """``spec.analysis`` (or the deprecated ``canaryAnalysis``); an empty one when neither is set."""
        return self.spec.analysis or CanaryAnalysis()

    @property
    def apex_name(self) -> str:
        """Name of the apex Service: ``service.name``, else ``targetRef.name``."""
        return self.spec.service.name or self.spec.target_ref.name

    @property
    def primary_name(self) -> str:
        """Name of the primary Deployment/DaemonSet: ``<targetRef.name>-primary``."""
        return f"{self.spec.target_ref.name}-primary"

    @property
    def primary_service_name(self) -> str:
        """Name of the primary Service: ``<apex>-primary``."""
        return f"{self.apex_name}-primary"

    @property
    def canary_service_name(self) -> str:
        """Name of the canary Service: ``<apex>-canary``."""
        return f"{self.apex_name}-canary"

    def service_names(self) -> tuple[str, str, str]:
        """Apex, primary and canary Service names, as Flagger names them."""
        return self.apex_name, self.primary_service_name, self.canary_service_name

    def provider_api_version(self) -> str:
        """The HTTPRoute API version to use: ``v1`` unless the provider says ``gatewayapi:v1beta1``."""
        return GATEWAY_PROVIDERS.get(self.spec.provider or "gatewayapi", "v1")

    @property
    def strategy(self) -> Strategy:
        """The rollout strategy Flagger would pick for this spec."""
        analysis = self.analysis
        if analysis.iterations:
            if analysis.match:
                return Strategy.AB
            return Strategy.MIRROR if analysis.mirror else Strategy.BLUE_GREEN
        return Strategy.CANARY

    @property
    def interval_seconds(self) -> float:
        """Seconds between analysis steps (60 when unset).

        Flagger raises values under 10s to 10s; this does not, so tests and demos can run fast. The engine may
        apply a floor from its settings.
        """
        return parse_duration(self.analysis.interval or ANALYSIS_INTERVAL, f"{self.spec.analysis_path}.interval")

    @property
    def progress_deadline_seconds(self) -> int:
        """Seconds a step may take before the release fails (600 when unset)."""
        return self.spec.progress_deadline_seconds or PROGRESS_DEADLINE_SECONDS

    @property
    def threshold(self) -> int:
        """Failed checks tolerated before rollback (1 when unset or 0)."""
        return self.analysis.threshold or FAILED_CHECKS_THRESHOLD

    @property
    def iterations(self) -> int:
        """Analysis runs for A/B and blue/green (0 for a weighted canary)."""
        return self.analysis.iterations or 0

    @property
    def primary_ready_threshold(self) -> int:
        """Percentage of primary pods that must be ready (100 when unset)."""
        value = self.analysis.primary_ready_threshold
        return READY_THRESHOLD if value is None else value

    @property
    def canary_ready_threshold(self) -> int:
        """Percentage of canary pods that must be ready (100 when unset)."""
        value = self.analysis.canary_ready_threshold
        return READY_THRESHOLD if value is None else value

    @property
    def skip_analysis(self) -> bool:
        """Promote without checks: ``skipAnalysis: true`` or no analysis at all."""
        return bool(self.spec.skip_analysis) or self.spec.analysis is None

    @property
    def suspended(self) -> bool:
        """``spec.suspend``."""
        return bool(self.spec.suspend)

    @property
    def max_weight(self) -> int:
        """The canary weight at which analysis ends and promotion starts.

        The last of ``stepWeights`` when set, else ``maxWeight``, else 100 (Flagger's rule).
        """
        analysis = self.analysis
        if analysis.step_weights:
            return min(TOTAL_WEIGHT, analysis.step_weights[-1])
        return analysis.max_weight or TOTAL_WEIGHT

    def weight_schedule(self) -> list[int]:
        """Every canary weight of a weighted canary release, in order, ending at ``max_weight``."""
        weights: list[int] = []
        current = 0
        while True:
            nxt = self.next_weight(current)
            if nxt <= current:
                return weights
            weights.append(nxt)
            current = nxt

    def next_weight(self, current: int) -> int:
        """The canary weight after one successful step from ``current``, never above ``max_weight``.

        Unlike Flagger, a ``stepWeight`` that would overshoot ``maxWeight`` stops at ``maxWeight``, so the canary
        never receives more than ``maxWeight`` before promotion.
        """
        top = self.max_weight
        if current >= top:
            return top
        analysis = self.analysis
        if analysis.step_weights:
            return next((w for w in analysis.step_weights if w > current), top)
        step = analysis.step_weight or 0
        if step <= 0:
            return top
        return min(current + step, top)

    def promotion_weights(self, canary_weight: int) -> list[tuple[int, int]]:
        """The (primary, canary) weights of each promotion step from ``canary_weight`` back to (100, 0).

        One step when ``stepWeightPromotion`` is unset (all traffic to the primary at once).
        """
        step = self.analysis.step_weight_promotion or 0
        if step <= 0 or canary_weight <= 0:
            return [(TOTAL_WEIGHT, 0)]
        steps: list[tuple[int, int]] = []
        primary = TOTAL_WEIGHT - canary_weight
        while primary < TOTAL_WEIGHT:
            primary = min(TOTAL_WEIGHT, primary + step)
            steps.append((primary, TOTAL_WEIGHT - primary))
        return steps


# --- MetricTemplate ----------------------------------------------------------------------------------------------


class MetricTemplateProvider(ApiModel):
    """The metrics backend a template's query runs against."""

    type: Annotated[str, Field(min_length=1)] = Field(
        description="prometheus, datadog, cloudwatch, newrelic, graphite, influxdb, stackdriver, dynatrace, "
        "keptn, splunk or externalmetrics."
    )
    address: str | None = Field(default=None, description="HTTP(S) address of the backend.")
    headers: dict[str, list[str]] | None = Field(default=None, description="Extra HTTP headers for queries.")
    secret_ref: SecretReference | None = Field(default=None, description="Secret with the credentials.")
    region: str | None = Field(default=None, description="Region (CloudWatch).")
    insecure_skip_verify: bool | None = Field(default=None, description="Skip TLS certificate verification.")


class MetricTemplateSpec(ApiModel):
    """A reusable metric query and where to run it."""

    provider: MetricTemplateProvider = Field(description="The metrics backend.")
    query: Annotated[str, Field(min_length=1)] = Field(
        description="Query text; a template with {{ name }}, {{ namespace }}, {{ target }}, {{ interval }}, ..."
    )


class ResourceCondition(ApiModel):
    """A status condition of a MetricTemplate or AlertProvider."""

    type: str
    status: str
    last_update_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class ResourceStatus(ApiModel):
    """Status of a MetricTemplate or AlertProvider."""

    conditions: list[ResourceCondition] | None = None


class MetricTemplate(_Resource):
    """A ``flagger.app/v1beta1`` MetricTemplate."""

    kind: str = "MetricTemplate"
    spec: MetricTemplateSpec
    status: ResourceStatus | None = None

    @classmethod
    def from_dict(cls, obj: Any) -> MetricTemplate:
        """Parse and validate a raw MetricTemplate; :class:`SpecError` lists every problem."""
        return cls._parse(obj)


# --- AlertProvider -----------------------------------------------------------------------------------------------

ALERT_PROVIDER_TYPES = ("slack", "msteams", "discord", "rocket", "gchat", "generic")


class AlertProviderSpec(ApiModel):
    """An alert channel."""

    type: Literal["slack", "msteams", "discord", "rocket", "gchat", "generic"] = Field(
        description="slack, msteams, discord, rocket, gchat, or generic (flaggerpy extension: JSON POST)."
    )
    channel: str | None = Field(default=None, description="Channel to post to (Slack, Rocket).")
    username: str | None = Field(default=None, description="Bot user name (Slack, Rocket, Discord).")
    address: str | None = Field(default=None, description="Webhook URL; or put it in the Secret's address key.")
    proxy: str | None = Field(default=None, description="HTTP(S) proxy URL.")
    secret_ref: SecretReference | None = Field(default=None, description="Secret with address/proxy keys.")

    @model_validator(mode="after")
    def _has_address(self) -> Self:
        if not self.address and self.secret_ref is None:
            raise ValueError("needs address or secretRef")
        return self


class AlertProvider(_Resource):
    """A ``flagger.app/v1beta1`` AlertProvider."""

    kind: str = "AlertProvider"
    spec: AlertProviderSpec
    status: ResourceStatus | None = None

    @classmethod
    def from_dict(cls, obj: Any) -> AlertProvider:
        """Parse and validate a raw AlertProvider; :class:`SpecError` lists every problem."""
        return cls._parse(obj)


__all__ = [
    "ALERT_PROVIDER_TYPES",
    "BUILTIN_METRICS",
    "GATEWAY_PROVIDERS",
    "AlertProvider",
    "Canary",
    "CanaryAlert",
    "CanaryAnalysis",
    "CanaryCondition",
    "CanaryMetric",
    "CanaryService",
    "CanarySpec",
    "CanaryStatus",
    "CanaryWebhook",
    "FieldError",
    "HTTPMatchRequest",
    "MetricSample",
    "MetricTemplate",
    "ParentReference",
    "SessionAffinity",
    "SpecError",
    "Strategy",
    "StringMatch",
    "ThresholdRange",
    "parse_duration",
]
