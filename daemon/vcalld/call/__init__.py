"""Call engine: turns "join room R as D" into peer connections.

Knows nothing of MQTT, devices or the display.
"""
