"""flaggerpy: progressive delivery for Kubernetes through the Gateway API, compatible with Flagger's API."""

__version__ = "0.1.0.dev0"
