"""Pushing the journal out: the upstream MQTT bridge and the work-order webhook."""
