"""Watches what a Modbus client receives for one request, so a garbled answer fails that
request as ``bad_frame`` instead of passing for silence or escaping as an exception.

pymodbus 3.11's client hands every received byte to its framer (``handleFrame``) from the
transport's data callback. On garbage it does one of three things, none of them a clean
failure: it skips a frame for another device or transaction and keeps waiting (the request
times out as if the device were silent); it waits for bytes a lying length or a bad CRC
promised (the same); or the PDU decoder raises, and the exception leaves the data callback:
asyncio logs it with a traceback and closes a TCP connection, and a serial port's reader
callback raises again on every further byte. ``FrameWatch`` is mixed into the framer
classes (``drivers/modbus/driver.py`` builds the subclasses, so this module does not import
pymodbus, and pymodbus's own ``isinstance`` checks on its framer still hold): it records what
arrived and why no answer came of it, and turns a decoder exception into "nothing decoded"
after dropping the bytes, whose framing is no longer known.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FrameWatch"]

_KEEP = 48  # bytes of a bad answer kept for the log line


class FrameWatch:
    """Mixin for a pymodbus framer; ``start()`` before each request, ``verdict()`` after it
    failed.

    Example::

        class WatchedRtu(FrameWatch, FramerRTU): ...
        client.ctx.framer = watch = WatchedRtu(client.ctx.framer.decoder)
        watch.start()
        ...  # the request times out
        watch.verdict()   # "an answer for another device or transaction; first bytes …"
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heard = b""
        self.problem: str | None = None

    def start(self) -> None:
        """Forget the previous request's bytes."""
        self.heard = b""
        self.problem = None

    def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int  # noqa: N802 - pymodbus's name
                    ) -> tuple[int, Any]:
        """pymodbus's framer interface: (bytes used, PDU or None); never raises."""
        self.heard = bytes(data[:_KEEP]) if len(data) >= len(self.heard) else self.heard
        try:
            used, pdu = super().handleFrame(data, exp_devid, exp_tid)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - whatever the decoder chokes on is a bad frame
            self.problem = f"undecodable answer ({exc})"
            return len(data), None
        if pdu is None and used:
            self.problem = "an answer for another device or transaction"
        return used, pdu

    def verdict(self) -> str | None:
        """Why the failed request's answer was unusable; None if nothing arrived at all."""
        if not self.heard and self.problem is None:
            return None
        problem = self.problem or "incomplete or unframed answer (bad CRC, short frame, " \
                                  "lying length or noise)"
        return f"{problem}; first bytes heard: {self.heard.hex(' ') or '-'}"
