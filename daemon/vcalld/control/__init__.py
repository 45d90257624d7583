"""Transports that turn outside requests into commands (local socket now; MQTT next)."""
