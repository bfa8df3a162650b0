"""ONNX Runtime's CalibrationMethod and CalibrationDataReader."""

import abc
from enum import Enum


class CalibrationMethod(Enum):
    """How static quantization picks activation ranges. Kerf has MinMax, Entropy and Percentile."""

    MinMax = 0
    Entropy = 1
    Percentile = 2
    Distribution = 3


class CalibrationDataReader(metaclass=abc.ABCMeta):
    """Calibration data: get_next() returns one feed dict {input name: numpy array} per call,
    then None. Any object with a get_next method counts as one (onnxruntime's readers included)."""

    @classmethod
    def __subclasshook__(cls, subclass):
        return (hasattr(subclass, "get_next") and callable(subclass.get_next)) or NotImplemented

    @abc.abstractmethod
    def get_next(self) -> dict:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self):
        result = self.get_next()
        if result is None:
            raise StopIteration
        return result
