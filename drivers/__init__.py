"""Everything that talks to a device or a broker; imports only gateway.types/errors/clock."""
