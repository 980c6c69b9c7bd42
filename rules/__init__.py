"""Turns observations into alarm decisions and alarms into work orders; no I/O of its own."""
