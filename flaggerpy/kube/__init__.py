"""flaggerpy.kube: talking to Kubernetes; knows nothing about canaries.

- ``api``: :class:`~flaggerpy.kube.api.KubeClient` (one per process) and
  :class:`~flaggerpy.kube.api.Resource` handles; objects are plain dicts.
- ``errors``: ``ApiError`` and its subclasses ``NotFound``, ``Conflict``, ``AlreadyExists``, ``Gone``, ``Invalid``,
  ``Forbidden``, ``Unavailable``; ``ConfigError``.
- ``resources``: well-known handles (``DEPLOYMENTS``, ``CANARIES``, ``HTTPROUTES_V1``, ...).
- ``watch``: raw list+watch generator; ``informer``: ``Store`` + ``Informer``; ``workqueue``: ``WorkQueue``;
  ``reconcile``: ``Result`` and ``handle_result`` (result → forget/add_after/add_rate_limited); ``ratelimit``:
  token bucket and per-key backoff;
  ``leader``: ``LeaderElector``; ``events``: ``EventRecorder``; ``settings``: every timeout/backoff/limit.
- ``http``: the keep-alive HTTP/1.1 client of request/response calls; ``jsonio``: orjson with stdlib fallbacks.
"""
