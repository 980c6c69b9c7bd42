"""Modbus TCP, RTU and RTU-over-TCP: register maps, a pure codec and the polling driver.

Only ``drivers/modbus/driver.py`` imports pymodbus; everything else here is pure and can be
imported (by ``gateway.config`` for validation) without touching the network.
"""
