"""Flagger's ``flagger.app/v1beta1`` API as typed models, and the CRDs generated from them.

``flagger`` holds the models (Canary, MetricTemplate, AlertProvider) and the engine's helpers; ``validation`` the
rules between fields; ``errors`` the field-path errors; ``durations`` Go durations; ``gatewayapi`` the embedded
Gateway API types; ``crds`` the CRD generator (``python -m flaggerpy.apis.crds deploy/crds``).
"""
