"""kerf.optim: optimizers and learning-rate schedules with torch.optim's exact update rules and
defaults, as configurations for kerf.Trainer and kerf.train.

    optimizer = kerf.optim.AdamW(lr=1e-3, weight_decay=0.01)
    schedule = kerf.optim.CosineAnnealingLR(T_max=100)

Schedules advance once per optimizer step (as `scheduler.step()` after each
`optimizer.step()` in PyTorch).
"""

from .errors import KerfError, Status

_SGD, _ADAM, _ADAMW = 0, 1, 2  # KERF_OPTIMIZER_*
_SCHEDULES = {"constant": 0, "step": 1, "multi_step": 2, "exponential": 3, "cosine": 4, "warmup_linear": 5,
              "warmup_cosine": 6, "one_cycle": 7}  # KERF_SCHEDULE_*


class Optimizer:
    """An optimizer configuration (kind and hyperparameters)."""

    def __init__(self, kind, **settings):
        self.kind = kind
        self.settings = settings

    def _fill(self, options):
        options.optimizer = self.kind
        for name, value in self.settings.items():
            if name == "betas":
                options.beta1, options.beta2 = (float(v) for v in value)
            elif name in ("nesterov", "amsgrad"):
                setattr(options, name, 1 if value else 0)
            else:
                setattr(options, name, float(value))

    def __repr__(self):
        names = {_SGD: "SGD", _ADAM: "Adam", _ADAMW: "AdamW"}
        return f"kerf.optim.{names[self.kind]}({', '.join(f'{k}={v!r}' for k, v in self.settings.items())})"


def SGD(lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD (torch requires lr; Kerf's default is 0.01)."""
    return Optimizer(_SGD, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)


def Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    """torch.optim.Adam (L2 weight decay added to the gradient)."""
    return Optimizer(_ADAM, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    """torch.optim.AdamW (decoupled weight decay)."""
    return Optimizer(_ADAMW, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class Schedule:
    """A learning-rate schedule configuration."""

    def __init__(self, kind, **settings):
        self.kind = kind
        self.settings = settings

    def _fill(self, options):
        options.schedule = self.kind
        for name, value in self.settings.items():
            if name == "milestones":
                continue
            setattr(options, name, value)

    def __repr__(self):
        return f"kerf.optim.Schedule({self.kind}, {self.settings})"


def _int(value, what):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise KerfError(Status.INVALID_ARGUMENT, f"{what} must be an integer, got {value!r}") from None


def StepLR(step_size, gamma=0.1):
    return Schedule(_SCHEDULES["step"], step_size=_int(step_size, "step_size"), gamma=float(gamma))


def MultiStepLR(milestones, gamma=0.1):
    return Schedule(_SCHEDULES["multi_step"], milestones=[_int(m, "milestone") for m in milestones], gamma=float(gamma))


def ExponentialLR(gamma):
    return Schedule(_SCHEDULES["exponential"], gamma=float(gamma))


def CosineAnnealingLR(T_max, eta_min=0.0):
    """torch's CosineAnnealingLR, computed recursively as torch does (so sequences match)."""
    return Schedule(_SCHEDULES["cosine"], t_max=_int(T_max, "T_max"), eta_min=float(eta_min))


def LinearWarmup(warmup_steps, total_steps, decay="linear", final_fraction=0.0):
    """Linear warmup from 0 over warmup_steps, then linear or cosine ("cosine") decay to
    final_fraction of the learning rate at total_steps: transformers'
    get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup."""
    if decay not in ("linear", "cosine"):
        raise KerfError(Status.INVALID_ARGUMENT, f"decay must be 'linear' or 'cosine', got {decay!r}")
    return Schedule(_SCHEDULES["warmup_" + decay], warmup_steps=_int(warmup_steps, "warmup_steps"),
                    total_steps=_int(total_steps, "total_steps"), final_fraction=float(final_fraction))


def OneCycleLR(max_lr=None, total_steps=None, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    """torch's OneCycleLR with cosine annealing and momentum (or beta1) cycled between 0.85
    and 0.95. max_lr None: the optimizer's lr."""
    if total_steps is None:
        raise KerfError(Status.INVALID_ARGUMENT, "OneCycleLR needs total_steps")
    return Schedule(_SCHEDULES["one_cycle"], max_lr=0.0 if max_lr is None else float(max_lr), total_steps=_int(total_steps, "total_steps"),
                    pct_start=float(pct_start), div_factor=float(div_factor), final_div_factor=float(final_div_factor))


__all__ = ["Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR", "LinearWarmup", "MultiStepLR", "OneCycleLR",
           "Optimizer", "SGD", "Schedule", "StepLR"]
