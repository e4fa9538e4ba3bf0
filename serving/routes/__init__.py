"""The service's routers: scoring, model information, health and metrics."""
