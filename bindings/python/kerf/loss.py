"""kerf.loss: training losses on named model outputs and fed targets, as PyTorch computes them.

    loss = kerf.loss.CrossEntropy(output="logits", labels="labels")
    loss = 0.5 * kerf.loss.MSE(output="embedding", target="teacher") + kerf.loss.L1(output="y", target="t")

Each loss names the model output it reads and the feed that holds its labels or targets (a
name that is not a model input: the trainer feeds it with each batch). Terms add up with `+`
and scale with a number; `reduction` ("mean" or "sum") applies to every term.
"""

from ._bindings import LossTerm
from .errors import KerfError, Status

_CROSS_ENTROPY, _MSE, _L1, _HUBER, _BCE_WITH_LOGITS = 0, 1, 2, 3, 4  # KERF_LOSS_*
_REDUCTIONS = {"mean": 0, "sum": 1}  # KERF_REDUCTION_*


class Loss:
    """A weighted sum of loss terms. Build one from the term classes below."""

    def __init__(self, terms, reduction="mean"):
        self.terms = list(terms)  # [(weight, _Term)]
        if reduction not in ("mean", "sum"):
            raise KerfError(Status.INVALID_ARGUMENT, f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def __add__(self, other):
        if not isinstance(other, Loss):
            return NotImplemented
        if other.reduction != self.reduction:
            raise KerfError(Status.INVALID_ARGUMENT, "cannot add losses with different reductions")
        return Loss(self.terms + other.terms, self.reduction)

    def __mul__(self, factor):
        try:
            factor = float(factor)
        except (TypeError, ValueError):
            return NotImplemented
        return Loss([(w * factor, t) for w, t in self.terms], self.reduction)

    __rmul__ = __mul__

    @property
    def targets(self):
        """The feeds the loss reads besides the model's inputs, once each, in order."""
        seen = []
        for _, term in self.terms:
            if term.target not in seen:
                seen.append(term.target)
        return seen

    def _c_terms(self):
        """The terms as a ctypes LossTerm array (with the encoded names it points at)."""
        array = (LossTerm * len(self.terms))()
        for i, (weight, term) in enumerate(self.terms):
            array[i].kind = term.kind
            array[i].output = term.output.encode("utf-8")
            array[i].target = term.target.encode("utf-8")
            array[i].weight = weight
            array[i].from_probabilities = 1 if term.from_probabilities else 0
            array[i].label_smoothing = term.label_smoothing
            array[i].delta = term.delta
        return array

    def __repr__(self):
        parts = " + ".join(f"{w:g} * {t!r}" if w != 1 else repr(t) for w, t in self.terms)
        return f"<kerf.loss {parts} ({self.reduction})>"


class _Term:
    def __init__(self, kind, output, target, from_probabilities=False, label_smoothing=0.0, delta=1.0):
        for what, value in (("output", output), ("target", target)):
            if not isinstance(value, str) or not value:
                raise KerfError(Status.INVALID_ARGUMENT, f"loss {what} must be a value name, got {value!r}")
        self.kind, self.output, self.target = kind, output, target
        self.from_probabilities = bool(from_probabilities)
        self.label_smoothing = float(label_smoothing)
        self.delta = float(delta)

    def __repr__(self):
        names = {0: "CrossEntropy", 1: "MSE", 2: "L1", 3: "Huber", 4: "BCEWithLogits"}
        return f"{names[self.kind]}({self.output!r}, {self.target!r})"


def CrossEntropy(output, labels, from_probabilities=False, label_smoothing=0.0, reduction="mean"):
    """torch.nn.CrossEntropyLoss on `output` (classes on axis 1): logits, or with
    from_probabilities=True softmax probabilities (the output of a model ending in Softmax,
    as scikit-learn's exports do). `labels`: int class indices (the output's shape without
    axis 1) or float class probabilities (the output's shape). label_smoothing in [0, 1]."""
    return Loss([(1.0, _Term(_CROSS_ENTROPY, output, labels, from_probabilities, label_smoothing))], reduction)


def MSE(output, target, reduction="mean"):
    """torch.nn.MSELoss: mean (or sum) of squared differences over all elements."""
    return Loss([(1.0, _Term(_MSE, output, target))], reduction)


def L1(output, target, reduction="mean"):
    """torch.nn.L1Loss: mean (or sum) of absolute differences."""
    return Loss([(1.0, _Term(_L1, output, target))], reduction)


def Huber(output, target, delta=1.0, reduction="mean"):
    """torch.nn.HuberLoss: 0.5·d² where |d| < delta, delta·(|d| − 0.5·delta) elsewhere."""
    return Loss([(1.0, _Term(_HUBER, output, target, delta=delta))], reduction)


def BCEWithLogits(output, target, reduction="mean"):
    """torch.nn.BCEWithLogitsLoss: `output` holds logits, `target` probabilities in [0, 1]."""
    return Loss([(1.0, _Term(_BCE_WITH_LOGITS, output, target))], reduction)


__all__ = ["BCEWithLogits", "CrossEntropy", "Huber", "L1", "Loss", "MSE"]
