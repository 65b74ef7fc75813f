"""flaggerpy.analysis.providers."""
