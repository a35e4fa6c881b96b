"""Logs, metrics, error tracking and the request context they share."""
