"""FrameWatch: what a framer made of the bytes of one request, without pymodbus."""

from __future__ import annotations

from typing import Any

from drivers.modbus.framewatch import FrameWatch


class _Framer:
    """Stands in for a pymodbus framer: answers from a script."""

    def __init__(self, result: tuple[int, Any] | Exception) -> None:
        self.result = result

    def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int  # noqa: N802
                    ) -> tuple[int, Any]:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class _Watched(FrameWatch, _Framer):
    pass


def test_framewatch_silence_has_no_verdict() -> None:
    watch = _Watched((0, None))
    watch.start()
    assert watch.verdict() is None


def test_framewatch_decoder_exception_drops_the_bytes_and_says_why() -> None:
    watch = _Watched(ValueError("byte_count 20 > length of packet 5"))
    watch.start()
    assert watch.handleFrame(b"\x01\x03\x14\x00\x01", 1, 0) == (5, None)
    assert watch.verdict() == ("undecodable answer (byte_count 20 > length of packet 5); "
                               "first bytes heard: 01 03 14 00 01")


def test_framewatch_skipped_frame_is_an_answer_for_someone_else() -> None:
    watch = _Watched((9, None))
    watch.start()
    watch.handleFrame(b"\x00\x05\x00\x00\x00\x03\x02\x03\x00", 1, 4)
    assert watch.verdict() is not None
    assert watch.verdict().startswith("an answer for another device or transaction; ")


def test_framewatch_bytes_waiting_for_more_are_an_incomplete_answer() -> None:
    watch = _Watched((0, None))
    watch.start()
    watch.handleFrame(b"\x01\x03", 1, 0)
    assert (watch.verdict() or "").startswith("incomplete or unframed answer")
    watch.start()  # the next request starts clean
    assert watch.verdict() is None


def test_framewatch_passes_a_decoded_answer_through() -> None:
    pdu = object()
    watch = _Watched((7, pdu))
    watch.start()
    assert watch.handleFrame(b"\x01\x03\x02\x00\x07\x00\x00", 1, 0) == (7, pdu)
