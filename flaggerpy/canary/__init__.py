"""flaggerpy.canary."""
