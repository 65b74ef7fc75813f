"""In-sandbox controllers, as kube-controller-manager and operators run them: workloads, HPA, KEDA, GC."""
