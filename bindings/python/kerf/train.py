"""kerf.Trainer and kerf.train: training an ONNX model's weights on the graph itself.

    trainer = kerf.Trainer("mlp.onnx", loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                           optimizer=kerf.optim.SGD(lr=0.1, momentum=0.9))
    for x, y in batches:
        loss = trainer.step({"input": x, "y": y})
    trainer.save("trained.onnx")

    report = kerf.train("mlp.onnx", "trained.onnx", data="train.npz", validation="valid.npz",
                        loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                        optimizer=kerf.optim.AdamW(lr=1e-3), epochs=10, batch_size=32)
"""

import ctypes
import os

import numpy as np

from . import _tensor
from ._bindings import (BatchCallback, DistillOptions, ModelP, TensorP, TrainerP, TrainOptions, TrainProgressCallback, check,
                        lib, new_options, take_string)
from ._handle import Handle
from .compress_common import ProgressBar, QuantizeReport, TrainReport, c_strings, choice, rewrite_model
from .errors import KerfError, Status
from .loss import _REDUCTIONS, Loss
from .model import Model, _path_bytes, load
from .optim import SGD, Optimizer, Schedule
from .quantize import attach_data, quantize_options


_INITIALIZATIONS = {None: 0, "kaiming_uniform": 1, "kaiming_normal": 2, "xavier_uniform": 3, "xavier_normal": 4}  # KERF_INIT_*


def _options(loss, optimizer, schedule, trainable, frozen, no_decay, max_grad_norm, accumulation_steps, threads,
             optimize, initialize=None, init_seed=0, train_mode=True, seed=0, keep_sparsity=True, gradual_prune=None):
    """A TrainOptions struct and the ctypes objects it points at (kept alive by the caller).
    loss None leaves the loss empty (kerf_distill builds its own)."""
    if loss is not None and not isinstance(loss, Loss):
        raise KerfError(Status.INVALID_ARGUMENT, f"loss must be a kerf.loss loss, got {loss!r}")
    optimizer = SGD() if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise KerfError(Status.INVALID_ARGUMENT, f"optimizer must come from kerf.optim, got {optimizer!r}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise KerfError(Status.INVALID_ARGUMENT, f"schedule must come from kerf.optim, got {schedule!r}")
    options = new_options(TrainOptions)
    keep = []
    if loss is not None:
        terms = loss._c_terms()
        keep.append(terms)
        options.loss = ctypes.cast(terms, type(options.loss))
        options.n_loss = len(loss.terms)
        options.reduction = _REDUCTIONS[loss.reduction]
    options.keep_sparsity = 1 if keep_sparsity else 0
    _fill_gradual_pruning(options, gradual_prune)
    try:
        optimizer._fill(options)
        if schedule is not None:
            schedule._fill(options)
            milestones = schedule.settings.get("milestones")
            if milestones is not None:
                array = (ctypes.c_int64 * max(len(milestones), 1))(*milestones)
                keep.append(array)
                options.milestones = ctypes.cast(array, type(options.milestones))
                options.n_milestones = len(milestones)
        options.max_grad_norm = 0.0 if max_grad_norm is None else float(max_grad_norm)
        options.accumulation_steps = int(accumulation_steps)
        options.threads = 0 if threads is None else int(threads)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid training option: {error}") from None
    options.optimization_level = 1 if optimize else 0
    if initialize not in _INITIALIZATIONS:
        raise KerfError(Status.INVALID_ARGUMENT, f"initialize must be one of {[k for k in _INITIALIZATIONS if k]} or None, "
                                                 f"got {initialize!r}")
    options.initialization = _INITIALIZATIONS[initialize]
    options.initialization_seed = int(init_seed)
    options.training_mode = 1 if train_mode else 0
    options.seed = int(seed)
    for field, names in (("trainable", trainable), ("frozen", frozen), ("no_decay", no_decay)):
        array, count = c_strings(names or (), field)
        keep.append(array)
        setattr(options, field, array)
        setattr(options, "n_" + field, count)
    return options, keep


class Trainer(Handle):
    """Trains a model's float initializers (the model file is not changed; `save` writes the
    trained model). Every step runs forward, loss and backward as one Kerf session and
    updates the parameters with `optimizer` (kerf.optim), the learning rate following
    `schedule`. Feeds are the model's inputs and the loss's targets, by name.

    model: a path or a kerf.Model. trainable / frozen: initializer names, node names or op
    types (default: every float initializer of more than one element that the loss depends
    on). no_decay: parameters (same forms) without weight decay. max_grad_norm: clip the
    gradients' global L2 norm. accumulation_steps: update every that many steps with their
    mean gradient. threads=None: one per core. optimize=False differentiates and runs the graph
    as written (no fusion of torch's decomposed LayerNorm and GELU, no graph optimizations). initialize: train from scratch, the parameters re-initialized
    ("kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal" for weights; biases 0,
    normalization scales 1, embeddings N(0, 1)), seeded by init_seed. train_mode=True trains as
    PyTorch's model.train() (BatchNormalization on batch statistics, updating the running ones;
    Dropout drops, its masks seeded by `seed`); False runs the graph as exported (model.eval()).
    Evaluation always runs as exported. keep_sparsity=True keeps the exact zeros of every
    trained weight of rank >= 2 that has zeros and other values (a pruned model stays exactly as
    sparse; momentum and Adam cannot move them). gradual_prune prunes the weights (MatMul/Gemm
    B, Conv W) by magnitude while training, as Zhu & Gupta: a final sparsity, or a dict with
    "sparsity" and optionally "initial_sparsity", "start", "end", "every" (optimizer updates; a
    Trainer stepped by hand needs "end"; kerf.train and kerf.distill end at 3/4 of the run).
    A trainer is used by one thread at a time."""

    def __init__(self, model, loss, *, optimizer=None, schedule=None, trainable=None, frozen=None, no_decay=None,
                 max_grad_norm=None, accumulation_steps=1, threads=None, optimize=True, initialize=None, init_seed=0,
                 train_mode=True, seed=0, keep_sparsity=True, gradual_prune=None):
        self._handle = None
        if not isinstance(loss, Loss):
            raise KerfError(Status.INVALID_ARGUMENT, f"loss must be a kerf.loss loss, got {loss!r}")
        self.loss = loss
        options, keep = _options(loss, optimizer, schedule, trainable, frozen, no_decay, max_grad_norm,
                                 accumulation_steps, threads, optimize, initialize, init_seed, train_mode, seed,
                                 keep_sparsity, gradual_prune)
        source = model if isinstance(model, Model) else load(model)
        try:
            handle = TrainerP()
            check(lib.kerf_trainer_create(source._live_handle(), ctypes.byref(options), ctypes.byref(handle)))
            self._handle = handle
        finally:
            if source is not model:
                source.close()
        del keep

    @classmethod
    def resume(cls, checkpoint, model, loss, **options):
        """A trainer made with these arguments, continued from `checkpoint` (see checkpoint())."""
        trainer = cls(model, loss, **options)
        trainer.restore(checkpoint)
        return trainer

    _kind = "trainer"

    def _free(self, handle):
        lib.kerf_trainer_free(handle)

    def _call(self, function, feeds):
        if not isinstance(feeds, dict):
            raise KerfError(Status.INVALID_ARGUMENT, "feeds must be a dict {name: array}")
        names = [str(name) for name in feeds]
        tensors = (TensorP * max(len(names), 1))()
        try:
            for i, name in enumerate(names):
                tensors[i] = _tensor.create(_tensor.as_feed_array(name, feeds[name]))
            c_names = (ctypes.c_char_p * max(len(names), 1))(*[n.encode("utf-8") for n in names])
            loss = ctypes.c_double()
            check(function(self._live_handle(), c_names, tensors, len(names), ctypes.byref(loss)))
            return loss.value
        finally:
            for i in range(len(names)):
                if tensors[i]:
                    lib.kerf_tensor_free(tensors[i])

    def step(self, feeds):
        """One training step on a batch; returns its loss (before the update)."""
        return self._call(lib.kerf_trainer_step, feeds)

    def backward(self, feeds):
        """Forward, loss and backward without an update (see gradients()); returns the loss."""
        return self._call(lib.kerf_trainer_backward, feeds)

    def evaluate(self, feeds):
        """The loss on a batch with the current parameters (forward only)."""
        return self._call(lib.kerf_trainer_evaluate, feeds)

    @property
    def parameter_names(self):
        """The trained parameters, in the model's order (empty before the first call)."""
        count = ctypes.c_size_t()
        check(lib.kerf_trainer_parameter_count(self._live_handle(), ctypes.byref(count)))
        names = []
        for i in range(count.value):
            name = ctypes.c_char_p()
            check(lib.kerf_trainer_parameter_name(self._handle, i, ctypes.byref(name)))
            names.append(name.value.decode("utf-8"))
        return names

    def _arrays(self, function, names):
        out = {}
        for name in names:
            tensor = TensorP()
            status = function(self._live_handle(), name.encode("utf-8"), ctypes.byref(tensor))
            if status == Status.INVALID_ARGUMENT and function is lib.kerf_trainer_gradient:
                continue  # no gradient (yet)
            check(status)
            out[name] = _tensor.take_array(tensor, name)
        return out

    def parameters(self):
        """{name: array}: copies of the parameters' current values."""
        return self._arrays(lib.kerf_trainer_parameter, self.parameter_names)

    def gradients(self):
        """{name: array}: copies of the gradients of the last step or backward."""
        return self._arrays(lib.kerf_trainer_gradient, self.parameter_names)

    @property
    def steps(self):
        """Optimizer updates so far."""
        steps = ctypes.c_int64()
        check(lib.kerf_trainer_progress(self._live_handle(), ctypes.byref(steps), None))
        return steps.value

    @property
    def learning_rate(self):
        """The learning rate of the next update (first parameter group)."""
        rate = ctypes.c_double()
        check(lib.kerf_trainer_progress(self._live_handle(), None, ctypes.byref(rate)))
        return rate.value

    def model(self):
        """The trained model as a new kerf.Model (an inference graph, like the original's)."""
        handle = ModelP()
        check(lib.kerf_trainer_model(self._live_handle(), ctypes.byref(handle)))
        return Model(handle)

    def save(self, path):
        """Writes the trained model to `path` atomically (ONNX Runtime runs it)."""
        with self.model() as model:
            model.save(path)

    def checkpoint(self, path):
        """Writes parameters, optimizer and schedule state and the step count to an .npz file,
        atomically: Trainer.resume(path, ...) continues with the same results."""
        check(lib.kerf_trainer_checkpoint(self._live_handle(), _path_bytes(path)))

    def restore(self, path):
        """Continues from a checkpoint of a trainer of the same model, loss and options."""
        check(lib.kerf_trainer_restore(self._live_handle(), _path_bytes(path)))



_GRADUAL_KEYS = {"sparsity": "gradual_sparsity", "initial_sparsity": "gradual_initial_sparsity",
                 "start": "gradual_start_step", "end": "gradual_end_step", "every": "gradual_every",
                 "criterion": "gradual_criterion"}
_GRADUAL_CRITERIA = {"magnitude": 0, "movement": 1}  # KERF_GRADUAL_*


def _fill_gradual_pruning(options, gradual_prune):
    """gradual_prune: None, the final sparsity (a float), or a dict with "sparsity" and optionally
    "initial_sparsity", "start", "end", "every" (optimizer updates) and "criterion" ("magnitude"
    or "movement")."""
    if gradual_prune is None:
        return
    settings = gradual_prune if isinstance(gradual_prune, dict) else {"sparsity": gradual_prune}
    unknown = set(settings) - set(_GRADUAL_KEYS)
    if unknown or "sparsity" not in settings:
        raise KerfError(Status.INVALID_ARGUMENT, f"gradual_prune takes a sparsity or a dict of {sorted(_GRADUAL_KEYS)} "
                                                 f"with 'sparsity', got {gradual_prune!r}")
    try:
        for key, value in settings.items():
            field = _GRADUAL_KEYS[key]
            if key == "criterion":
                value = choice(value, _GRADUAL_CRITERIA, "gradual_prune's criterion")
            setattr(options, field, float(value) if "sparsity" in key else int(value))
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid gradual_prune: {error}") from None
    if not options.gradual_sparsity > 0:
        raise KerfError(Status.INVALID_ARGUMENT, f"gradual_prune's sparsity must be in (0, 1), got {settings['sparsity']!r}")


def _arrays(data, what):
    """Training arrays from an .npz path or a dict: (names, tensors as kerf tensors)."""
    if isinstance(data, (str, bytes, os.PathLike)):
        with np.load(data) as archive:
            data = {key: archive[key] for key in archive.files}
    if not isinstance(data, dict) or not data:
        raise KerfError(Status.INVALID_ARGUMENT, f"{what} must be an .npz path or a non-empty dict of arrays")
    return {str(k): _tensor.as_feed_array(k, v) for k, v in data.items()}


class _Batches:
    """A Python source of batches as a kerf_batch_fn: `source(epoch)` returns an iterable of
    feed dicts for that epoch (a list, or a callable taking the epoch or nothing)."""

    def __init__(self, source):
        self.source = source
        self.epoch = None
        self.iterator = None
        self.next_index = 0
        self.error = None
        self.function = BatchCallback(self._call)

    def _epoch_batches(self, epoch):
        if callable(self.source):
            try:
                return iter(self.source(epoch))
            except TypeError:
                return iter(self.source())
        return iter(self.source)

    def _call(self, _user, epoch, index, names, count, feeds):
        try:
            if index == 0 or epoch != self.epoch:
                self.epoch, self.iterator, self.next_index = epoch, self._epoch_batches(epoch), 0
                for _ in range(index):  # resuming mid-epoch
                    next(self.iterator)
                self.next_index = index
            if index != self.next_index:
                raise KerfError(Status.INTERNAL, f"batch {index} of epoch {epoch} asked out of order")
            self.next_index = index + 1
            feed = next(self.iterator, None)
            if feed is None:
                return 0
            for k in range(count):
                name = names[k].decode("utf-8")
                if name not in feed:
                    raise KerfError(Status.INVALID_ARGUMENT, f"batch {index} of epoch {epoch} has no feed {name!r}")
                feeds[k] = _tensor.create(_tensor.as_feed_array(name, feed[name]))
            return 1
        except BaseException as error:  # noqa: BLE001 - must not unwind through C
            self.error = error
            return -1


class _Progress:
    """`progress` as a kerf_train_progress_fn: True (a bar on stderr) or a callable
    progress(step, total, epoch, loss, learning_rate) -> bool|None (False cancels)."""

    def __init__(self, progress):
        if progress is True:
            bar, shown = ProgressBar("train"), [-1]

            def progress(step, total, epoch, loss, lr):  # redrawn once per 1% (and at the end)
                percent = step * 100 // total if total else 0
                if percent != shown[0] or step == total:
                    shown[0] = percent
                    bar(step, total, f"epoch {epoch + 1} loss {loss:.4f}")
        self.progress = progress if progress else None
        self.error = None
        self.function = TrainProgressCallback(self._call) if self.progress else TrainProgressCallback()

    def _call(self, _user, step, total, epoch, loss, learning_rate):
        try:
            keep_going = self.progress(step, total, epoch, loss, learning_rate)
            return 0 if keep_going is None or keep_going else 1
        except BaseException as error:  # noqa: BLE001
            self.error = error
            return 1


def train(src, dst=None, *, data=None, loss=None, optimizer=None, schedule=None, validation=None, epochs=1,
          batch_size=32, max_steps=None, shuffle=True, seed=0, patience=None, restore_best=True, progress=None,
          checkpoint=None, checkpoint_every=0, resume_from=None, trainable=None, frozen=None, no_decay=None,
          max_grad_norm=None, accumulation_steps=1, threads=None, optimize=True, initialize=None, init_seed=0,
          train_mode=True, keep_sparsity=True, gradual_prune=None, qat=False, calibration=None, qat_momentum=0.99):
    """Trains a model and returns a TrainReport (a Report; its plot() draws the curves): per-epoch
    loss (and validation loss and accuracy), best epoch, steps, seconds per step, and the
    sparsity of each trained weight.

    src: a path, or a kerf.Model (changed in place; saved only if dst is given).
    dst: where to write the trained model; None with a path src rewrites src in place,
        atomically (a failure leaves it byte-identical).
    data: an .npz path or a dict of arrays (model inputs and loss targets by name, samples on
        axis 0; batched and, with shuffle, shuffled per epoch with `seed`), or a list of feed
        dicts, or a callable epoch -> iterable of feed dicts.
    validation: arrays (as data) evaluated after each epoch; with restore_best the parameters
        of the best epoch are kept; patience stops after that many epochs without improvement.
    checkpoint: write a checkpoint there after each epoch (and every checkpoint_every steps);
    resume_from: continue a run from such a checkpoint (same data and options).
    progress: True (a progress bar) or a callable(step, total, epoch, loss, learning_rate)
        returning False to cancel.
    qat: quantization-aware training, written back as the int8 file kerf.quantize writes:
        False (off), True or "static" (QDQ, activation ranges calibrated on `calibration`, or on
        the data arrays' model inputs, then moved towards each batch's by `qat_momentum`),
        "dynamic", or a dict of kerf.quantize keyword arguments (mode, method, per_channel,
        activation_type, exclude, op_types, percentile, quantize_embeddings). report.quantization is then
        kerf.quantize's report, its agreement measured on `calibration` when given.
    Other arguments are Trainer's."""
    if not isinstance(loss, Loss):
        raise KerfError(Status.INVALID_ARGUMENT, f"loss must be a kerf.loss loss, got {loss!r}")
    options, keep = _options(loss, optimizer, schedule, trainable, frozen, no_decay, max_grad_norm,
                             accumulation_steps, threads, optimize, initialize, init_seed, train_mode, seed, keep_sparsity,
                             gradual_prune)
    call = _with_qat(options, keep, qat, calibration, qat_momentum, batch_size,
                     lambda model, report: lib.kerf_train(model._live_handle(), ctypes.byref(options), report))
    return _run_loop(src, dst, options, keep, call,
                     data=data, validation=validation, epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                     shuffle=shuffle, patience=patience, restore_best=restore_best, progress=progress,
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume_from=resume_from)


def _run_loop(src, dst, options, keep, call, *, data, validation, epochs, batch_size, max_steps, shuffle, patience,
              restore_best, progress, checkpoint, checkpoint_every, resume_from):
    """Fills the loop's fields of `options` (data, validation, epochs, ...), runs
    call(model, report pointer) -> status on src (see train's src and dst) and returns the
    TrainReport. `keep` holds what `options` points at."""
    if data is None:
        raise KerfError(Status.INVALID_ARGUMENT, "training needs data")
    try:
        options.epochs = int(epochs)
        options.batch_size = int(batch_size)
        options.max_steps = 0 if max_steps is None else int(max_steps)
        options.shuffle = 1 if shuffle else 0
        options.patience = 0 if patience is None else int(patience)
        options.checkpoint_every = int(checkpoint_every)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid training option: {error}") from None
    options.restore_best = 1 if restore_best else 0
    if checkpoint is not None:
        options.checkpoint_path = _path_bytes(checkpoint)
    if resume_from is not None:
        options.resume_from = _path_bytes(resume_from)
    adapter = _Progress(progress)
    options.progress = adapter.function
    tensors = []
    batches = None

    def attach(arrays, names_field, tensors_field, count_field):
        names = list(arrays)
        c_names = (ctypes.c_char_p * len(names))(*[n.encode("utf-8") for n in names])
        handles = (TensorP * len(names))()
        for i, name in enumerate(names):
            handles[i] = _tensor.create(arrays[name])
            tensors.append(handles[i])
        keep.extend([c_names, handles])
        setattr(options, names_field, c_names)
        setattr(options, tensors_field, handles)
        setattr(options, count_field, len(names))

    def run(model):
        report = ctypes.c_void_p()
        status = call(model, ctypes.byref(report))
        for source in (adapter, batches):
            if source is not None and source.error is not None:
                raise source.error
        check(status)
        result = TrainReport.from_json(take_string(report))
        if "quantization" in result:
            result["quantization"] = QuantizeReport(result["quantization"])
        return result

    try:
        if isinstance(data, (dict, str, bytes, os.PathLike)):
            attach(_arrays(data, "data"), "data_names", "data", "n_data")
        else:
            batches = _Batches(data)
            options.batches = batches.function
        if validation is not None:
            attach(_arrays(validation, "validation"), "validation_names", "validation", "n_validation")
        return rewrite_model(src, dst, run)
    finally:
        for t in tensors:
            lib.kerf_tensor_free(t)


_OUTPUT_LOSSES = {"kl": 0, "mse": 1, "cosine": 2}  # KERF_DISTILL_*
_MATCH_KINDS = {"mse": 0, "cosine": 1, "attention": 2}  # KERF_MATCH_*


def distill(teacher, student, dst=None, *, data=None, validation=None, labels=None, outputs=None, output_loss="kl",
            temperature=2.0, alpha=0.5, optimizer=None, schedule=None, epochs=1, batch_size=32, max_steps=None,
            shuffle=True, seed=0, patience=None, restore_best=True, progress=None, checkpoint=None, checkpoint_every=0,
            resume_from=None, trainable=None, frozen=None, no_decay=None, max_grad_norm=None, accumulation_steps=1,
            threads=None, teacher_threads=None, optimize=True, train_mode=True, keep_sparsity=True, gradual_prune=None,
            qat=False, calibration=None, qat_momentum=0.99, matches=()):
    """Trains `student` to imitate `teacher` (knowledge distillation) and returns a TrainReport.

    teacher: a path or a kerf.Model, run on every batch (unchanged). student: a path or a
        kerf.Model taking the teacher's inputs (a pruned, narrowed or quantized copy, or any
        smaller model); dst as train's (None with a path rewrites the student in place).
    data: the student's inputs (and the labels array) in any form train's data takes; no labels
        are needed. validation: the same, evaluated after each epoch: validation accuracy is
        against the labels, else the top-1 agreement with the teacher.
    outputs: the values compared: None (the float graph outputs both models have), a list of
        names (the same in both), or {student value: teacher value} / [(student, teacher)].
    output_loss: "kl" (temperature² · KL(softmax(teacher/T) || softmax(student/T)) over axis 1,
        on the logits behind a Softmax output), "mse" or "cosine" (1 − cosine along the last axis).
    labels: the name of the data array of integer class labels; the loss is then
        alpha · distillation + (1 − alpha) · cross-entropy (Hinton's form; T = 2, alpha = 0.5
        are Hugging Face's defaults).
    matches: intermediate values trained towards the teacher's besides the outputs, entries
        (student value, teacher value[, kind[, weight]]) with kind "mse" (default), "cosine" (hidden
        states; through a learned linear projection, left out of the written file, when their
        last dimensions differ) or "attention" (Softmax outputs over the last axis, attention
        distributions, by KL on their inputs).
    keep_sparsity: a pruned student keeps exactly its zeros. gradual_prune: prune the student while
    it learns (see Trainer). qat: distill with quantization-aware training and write the student
    as int8 (see train: prune, QAT and distillation in one run). Other arguments are train's."""
    if output_loss not in _OUTPUT_LOSSES:
        raise KerfError(Status.INVALID_ARGUMENT, f"output_loss must be one of {list(_OUTPUT_LOSSES)}, got {output_loss!r}")
    options, keep = _options(None, optimizer, schedule, trainable, frozen, no_decay, max_grad_norm, accumulation_steps,
                             threads, optimize, None, 0, train_mode, seed, keep_sparsity, gradual_prune)
    settings = new_options(DistillOptions)
    settings.output_loss = _OUTPUT_LOSSES[output_loss]
    try:
        settings.temperature = float(temperature)
        settings.alpha = float(alpha)
        settings.teacher_threads = 0 if teacher_threads is None else int(teacher_threads)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid distillation option: {error}") from None
    if labels is not None:
        settings.labels = str(labels).encode("utf-8")
    pairs = _pairs(outputs)
    students, count = c_strings([s for s, _ in pairs], "outputs")
    teachers, _ = c_strings([t for _, t in pairs], "outputs")
    keep.extend([students, teachers])
    settings.student_values, settings.teacher_values, settings.n_values = students, teachers, count
    _fill_matches(settings, keep, matches)
    source = teacher if isinstance(teacher, Model) else load(teacher)
    try:
        call = _with_qat(options, keep, qat, calibration, qat_momentum, batch_size,
                         lambda model, report: lib.kerf_distill(model._live_handle(), source._live_handle(), ctypes.byref(options),
                                                                ctypes.byref(settings), report))
        return _run_loop(student, dst, options, keep, call,
                         data=data, validation=validation, epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                         shuffle=shuffle, patience=patience, restore_best=restore_best, progress=progress,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume_from=resume_from)
    finally:
        if source is not teacher:
            source.close()


_QAT_KEYS = {"mode", "method", "per_channel", "activation_type", "exclude", "op_types", "percentile", "quantize_embeddings"}


def _with_qat(options, keep, qat, calibration, momentum, batch_size, call):
    """`call` (model, report pointer) -> status, with `options.qat` pointing at the quantization
    options `qat` asks for (see train) and their calibration data attached for each model."""
    if qat is False or qat is None:
        if calibration is not None:
            raise KerfError(Status.INVALID_ARGUMENT, "calibration is for quantization-aware training: pass qat too")
        return call
    if qat is True:
        settings = {"mode": "static"}
    elif isinstance(qat, str):
        settings = {"mode": qat}
    elif isinstance(qat, dict):
        unknown = set(qat) - _QAT_KEYS
        if unknown:
            raise KerfError(Status.INVALID_ARGUMENT, f"qat takes {sorted(_QAT_KEYS)}, not {sorted(unknown)}")
        settings = {"mode": "static", **qat}
    else:
        raise KerfError(Status.INVALID_ARGUMENT, f"qat must be False, True, 'static', 'dynamic' or a dict, got {qat!r}")
    quantization, quantization_keep, _ = quantize_options(**settings)
    keep.extend(quantization_keep + [quantization])
    try:
        options.qat_range_momentum = float(momentum)
    except (TypeError, ValueError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid qat_momentum: {error}") from None
    options.qat = ctypes.pointer(quantization)

    def with_data(model, report):
        feeders = attach_data(quantization, model, calibration, None, batch_size)
        status = call(model, report)
        for feeder in feeders:
            feeder.reraise()
        return status

    return with_data


def _fill_matches(settings, keep, matches):
    """Points `settings` (DistillOptions) at the arrays of distill's `matches`."""
    entries = []
    for entry in matches or ():
        if not isinstance(entry, (tuple, list)) or not 2 <= len(entry) <= 4:
            raise KerfError(Status.INVALID_ARGUMENT, f"matches entries are (student, teacher[, kind[, weight]]), got {entry!r}")
        kind = choice(entry[2] if len(entry) > 2 else "mse", _MATCH_KINDS, "match kind")
        try:
            weight = float(entry[3]) if len(entry) > 3 else 1.0
        except (TypeError, ValueError):
            raise KerfError(Status.INVALID_ARGUMENT, f"match weight must be a number, got {entry[3]!r}") from None
        entries.append((str(entry[0]), str(entry[1]), kind, weight))
    students, count = c_strings([e[0] for e in entries], "matches")
    teachers, _ = c_strings([e[1] for e in entries], "matches")
    kinds = (ctypes.c_int32 * max(count, 1))(*[e[2] for e in entries])
    weights = (ctypes.c_double * max(count, 1))(*[e[3] for e in entries])
    keep.extend([students, teachers, kinds, weights])
    settings.match_students, settings.match_teachers, settings.n_matches = students, teachers, count
    settings.match_kinds = ctypes.cast(kinds, type(settings.match_kinds))
    settings.match_weights = ctypes.cast(weights, type(settings.match_weights))


def _pairs(outputs):
    """[(student value, teacher value)] from distill's `outputs`."""
    if outputs is None:
        return []
    if isinstance(outputs, str):
        return [(outputs, outputs)]
    if isinstance(outputs, dict):
        return [(str(s), str(t)) for s, t in outputs.items()]
    pairs = []
    for entry in outputs:
        if isinstance(entry, str):
            pairs.append((entry, entry))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            pairs.append((str(entry[0]), str(entry[1])))
        else:
            raise KerfError(Status.INVALID_ARGUMENT, f"outputs entries are names or (student, teacher) pairs, got {entry!r}")
    return pairs


__all__ = ["Trainer", "distill", "train"]
