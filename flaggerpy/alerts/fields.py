"""The facts Flagger attaches to an alert about a canary's analysis (target, threshold, deadline, routing)."""

from __future__ import annotations

from flaggerpy.apis.flagger import Canary, Strategy


def canary_fields(canary: Canary) -> dict[str, str]:
    """Target, failed checks threshold, progress deadline and traffic routing, worded like Flagger's alerts."""
    target = canary.spec.target_ref
    analysis = canary.analysis
    fields = {
        "Target": f"{target.kind or 'Deployment'}/{target.name}.{canary.metadata.namespace}",
        "Failed checks threshold": str(canary.threshold),
        "Progress deadline": f"{canary.progress_deadline_seconds}s",
    }
    strategy = canary.strategy
    if strategy == Strategy.AB:
        fields["Traffic routing"] = "A/B Testing"
    elif strategy in (Strategy.BLUE_GREEN, Strategy.MIRROR):
        fields["Traffic routing"] = "Blue/Green"
    elif analysis.step_weight:
        fields["Traffic routing"] = f"Weight step: {analysis.step_weight} max: {canary.max_weight}"
    elif analysis.step_weights:
        steps = ",".join(str(weight) for weight in analysis.step_weights)
        fields["Traffic routing"] = f"Weight steps: {steps} max: {canary.max_weight}"
    return fields
