"""flaggerpy.loadtester."""
