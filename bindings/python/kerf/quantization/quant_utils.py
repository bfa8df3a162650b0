"""ONNX Runtime's QuantType and QuantFormat, with its member names and values."""

from enum import Enum


class _NamedEnum(Enum):
    def __str__(self):
        return self.name

    @classmethod
    def from_string(cls, name):
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown {cls.__name__} {name!r}") from None


class QuantType(_NamedEnum):
    """Element type of quantized weights or activations. Kerf writes QInt8 and QUInt8 only."""

    QInt8 = 0
    QUInt8 = 1
    QFLOAT8E4M3FN = 2
    QInt16 = 3
    QUInt16 = 4
    QInt4 = 5
    QUInt4 = 6


class QuantFormat(_NamedEnum):
    """QOperator (QLinearConv, ...) or QDQ (QuantizeLinear/DequantizeLinear around float ops).
    Kerf writes QDQ only."""

    QOperator = 0
    QDQ = 1
