"""flaggerpy.kube."""
