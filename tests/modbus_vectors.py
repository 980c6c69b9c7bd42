"""Register vectors written out by hand from the Modbus/vendor conventions (not computed by
our codec), shared by the codec table tests and the wire tests.

Each row: data_type, byte_order, word_order, registers as on the wire, decoded value.
"""

VECTORS: list[tuple[str, str, str, list[int], object]] = [
    # 16-bit: word order does not apply
    ("int16", "big", "big", [0xFFFE], -2),
    ("int16", "little", "big", [0xFEFF], -2),
    ("int16", "big", "big", [0x8000], -32768),
    ("uint16", "big", "big", [0xFFFF], 65535),
    ("uint16", "little", "big", [0x3412], 0x1234),
    # 32-bit integer 0x12345678: ABCD, CDAB, BADC, DCBA
    ("int32", "big", "big", [0x1234, 0x5678], 0x12345678),
    ("int32", "big", "little", [0x5678, 0x1234], 0x12345678),
    ("int32", "little", "big", [0x3412, 0x7856], 0x12345678),
    ("int32", "little", "little", [0x7856, 0x3412], 0x12345678),
    ("int32", "big", "big", [0xFFFF, 0xFFFE], -2),
    ("uint32", "big", "big", [0xFFFF, 0xFFFE], 0xFFFFFFFE),
    ("uint32", "big", "little", [0x0001, 0x0002], 0x00020001),
    ("uint32", "little", "big", [0x0200, 0x0100], 0x00020001),
    ("uint32", "little", "little", [0x0100, 0x0200], 0x00020001),
    # float32 1.0 = 0x3F800000 and -2.5 = 0xC0200000
    ("float32", "big", "big", [0x3F80, 0x0000], 1.0),
    ("float32", "big", "little", [0x0000, 0x3F80], 1.0),
    ("float32", "little", "big", [0x803F, 0x0000], 1.0),
    ("float32", "little", "little", [0x0000, 0x803F], 1.0),
    ("float32", "big", "big", [0xC020, 0x0000], -2.5),
    # 64-bit 0x0102030405060708
    ("int64", "big", "big", [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    ("int64", "big", "little", [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    ("int64", "little", "big", [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    ("int64", "little", "little", [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    ("int64", "big", "big", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
    ("uint64", "big", "big", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], 2**64 - 2),
    ("uint64", "big", "big", [0x8102, 0x0304, 0x0506, 0x0708], 0x8102030405060708),
    ("uint64", "big", "little", [0x0708, 0x0506, 0x0304, 0x8102], 0x8102030405060708),
    ("uint64", "little", "big", [0x0281, 0x0403, 0x0605, 0x0807], 0x8102030405060708),
    ("uint64", "little", "little", [0x0807, 0x0605, 0x0403, 0x0281], 0x8102030405060708),
    # float64 1.0 = 0x3FF0000000000000, -2.5 = 0xC004000000000000
    ("float64", "big", "big", [0x3FF0, 0, 0, 0], 1.0),
    ("float64", "big", "little", [0, 0, 0, 0x3FF0], 1.0),
    ("float64", "little", "big", [0xF03F, 0, 0, 0], 1.0),
    ("float64", "little", "little", [0, 0, 0, 0xF03F], 1.0),
    ("float64", "big", "big", [0xC004, 0, 0, 0], -2.5),
    # register as boolean: anything but zero is true
    ("bool", "big", "big", [0x0000], False),
    ("bool", "big", "big", [0x0100], True),
    # strings: two ASCII characters per register, NUL/space padding stripped
    ("string", "big", "big", [0x6F70, 0x656E], "open"),
    ("string", "little", "big", [0x706F, 0x6E65], "open"),
    ("string", "big", "big", [0x7570, 0x0000], "up"),
]

BIT_VECTORS: list[tuple[int, int, bool]] = [
    (0b0000_0000_0000_1010, 0, False),
    (0b0000_0000_0000_1010, 1, True),
    (0b0000_0000_0000_1010, 3, True),
    (0x8000, 15, True),
    (0x7FFF, 15, False),
]
