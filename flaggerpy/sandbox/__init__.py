"""The embedded Kubernetes API server that tests, demos and benchmarks run flaggerpy against.

It imports nothing else from flaggerpy: the controller reaches it only over HTTP, exactly as a real cluster.
"""

from flaggerpy.sandbox.apiserver.cluster import Change, Cluster
from flaggerpy.sandbox.apiserver.faults import Counters, Faults, Rule
from flaggerpy.sandbox.apiserver.server import ServerSettings
from flaggerpy.sandbox.controllers.workloads import READY_ANNOTATION, READY_DELAY_ANNOTATION, WorkloadSettings
from flaggerpy.sandbox.sandbox import Sandbox, SandboxController

__all__ = [
    "READY_ANNOTATION",
    "READY_DELAY_ANNOTATION",
    "Change",
    "Cluster",
    "Counters",
    "Faults",
    "Rule",
    "Sandbox",
    "SandboxController",
    "ServerSettings",
    "WorkloadSettings",
]
