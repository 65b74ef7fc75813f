"""flaggerpy.analysis."""
