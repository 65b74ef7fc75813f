"""The simulated Gateway data plane: programming Gateways and routes, splitting and serving requests."""
