"""The API server: storage, watch, patch, schema validation, CEL rules, discovery and fault injection."""
