"""The training loop: data, statistics, the traced step, display, checkpoints, interruption.

Per step one traced update; on display steps (step % disp_freq == 0) the batch just trained on and
numb_btch validation batches are evaluated and a row goes to lcurve.out, with a progress line
(rate, ETA) in the log; checkpoints are written on display steps that are multiples of save_freq,
and once more at the end unless the last step already saved. SIGINT or SIGTERM stop the loop after
the current step with a checkpoint that --restart accepts. The next training batch is drawn
while the step runs (a thread runs the step; the data generator is used in the same order), with
several replicas in the process one of each replica's too (train/strategy.py). With
training/whole_validation, every checkpoint but a signal's (and every freq steps) first evaluates
the whole validation set (validation.py: figures, best model, early stopping, which ends the loop
with a checkpoint).
"""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from ..config.objects import Config
from ..learning_rate import ExpDecayLR
from ..loss import EnergyLoss
from ..precision import dtype_of
from ..store.keys import (CKPT_ATTRS, CKPT_DATA_STATE, CKPT_LOSS_SCALE, CKPT_MODEL,
                          CKPT_OPTIMIZER, CKPT_STEP)
from ..store.restore import TrainingAttributes, tables_trackables
from .adam import Adam
from .change_bias import change_bias_after_training
from .checkpoint import Checkpointer
from .lcurve import LearningCurve
from .loss_scale import DynamicLossScale
from .step import make_steps, step_input
from .strategy import SingleProcess
from .validation import WholeValidationRun

log = logging.getLogger("deepmd_tebd")


class Interrupted(Exception):
    """Training stopped by a signal after writing a checkpoint."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"training stopped by {signal.Signals(signum).name}")


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Trainer:
    """Training as `dp train` runs it, from objects built by the caller.

    model: an EnergyModel whose variables exist and whose statistics are set; train_data /
    valid_data: DataSystem objects (valid_data may be None); lr, loss: the schedule and the loss;
    config: the settings (config/objects.py), whose script the checkpoints keep; strategy: how
    a step runs (train/strategy.py; None: SingleProcess, one process on one device)."""

    def __init__(self, config: Config, model, train_data, valid_data, lr: ExpDecayLR,
                 loss: EnergyLoss, min_nbor_dist: float | None = None, strategy=None):
        training = config.training
        self.training = training
        self.model = model
        self.train_data = train_data
        self.valid_data = valid_data
        self.numb_btch = training.validation_data.numb_btch if valid_data else 0
        self.lr = lr
        self.loss = loss
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.optimizer = Adam(model.trainable_variables, *config.adam_betas)
        self.data_bias_nsample = config.model.data_bias_nsample
        mixed = training.mixed_precision
        self.loss_scale = DynamicLossScale() if mixed is not None else None
        # the data sampling state (JSON), so that --restart draws the batches an uninterrupted
        # run would have drawn
        self.data_state = tf.Variable("", dtype=tf.string, trainable=False, name="data_state")
        # what `dp freeze` needs besides the weights: the script that builds the model, and the
        # training data's minimal neighbour distance (-1: not computed)
        self.attrs = TrainingAttributes(config.script, min_nbor_dist)
        self._signal = None
        self.summary = None
        if training.tensorboard:  # its package was checked with the script
            self.summary = tf.summary.create_file_writer(training.tensorboard_log_dir)
        self.whole = None  # training/whole_validation (validation.py)
        if training.whole_validation is not None and valid_data is not None:
            self.whole = WholeValidationRun(training.whole_validation, training, model, loss,
                                            lr, valid_data, self.summary)
        self.checkpointer = Checkpointer(training.save_ckpt, training.max_ckpt_keep, **{
            CKPT_MODEL: model, CKPT_OPTIMIZER: self.optimizer, CKPT_STEP: self.step,
            CKPT_DATA_STATE: self.data_state, CKPT_ATTRS: self.attrs,
            **({CKPT_LOSS_SCALE: self.loss_scale} if mixed is not None else {}),
            **tables_trackables(model),
            **(self.whole.trackables() if self.whole is not None else {})})
        self.strategy = SingleProcess() if strategy is None else strategy
        self._traced_step, self.evaluate = make_steps(
            model, self.loss, self.optimizer, self.lr, self.step, self.loss.labels,
            self.loss_scale, None if mixed is None else dtype_of(mixed.output_prec),
            self.strategy)
        self._stop = False  # early stopping (whole validation) asked to stop
        self._step_call = None  # the traced step's concrete function (`_concrete_step`)

    # -- restoring -------------------------------------------------------------------------
    def restart(self, prefix: str) -> None:
        """Everything from a checkpoint: weights, statistics, optimizer state, step and the
        data sampling state."""
        script, min_dist = self.attrs.script_variable.numpy(), float(self.attrs.distance_variable)
        self.checkpointer.restore(prefix)
        # the script of this run (numb_steps may have grown); the checkpoint's distance unless
        # this run computed one
        self.attrs.script_variable.assign(script)
        if min_dist >= 0:
            self.attrs.distance_variable.assign(min_dist)
        state = self.data_state.numpy().decode()
        if state:
            self._set_sampling(json.loads(state))
        log.info(f"restart from checkpoint {prefix} at step {int(self.step)}")

    def _sampling(self) -> dict:
        """The data sampling state now: cheap snapshots, serialised only by `_save`."""
        return {"train": self.train_data.get_state(),
                "valid": self.valid_data.get_state() if self.valid_data else None}

    def _set_sampling(self, state: dict) -> None:
        self.train_data.set_state(state["train"])
        if self.valid_data is not None and state["valid"] is not None:
            self.valid_data.set_state(state["valid"])

    def _save(self, step: int, sampling: dict, validate: bool = True) -> None:
        """A checkpoint of this step; `sampling`: the data sampling state a restart starts from;
        `validate`: the whole-validation evaluation first (when configured)."""
        self.data_state.assign(json.dumps({name: None if state is None else state.to_json()
                                           for name, state in sampling.items()}))
        if self.whole is not None and validate:
            self._stop |= self.whole.evaluate(step, self.checkpointer.checkpoint)
        self.checkpointer.save(step)

    def _batch(self, data) -> dict:
        """The next batch of `data` as tensors of the steps' input signature: converted when
        drawn (while the previous step runs), not by the step's call."""
        return step_input(data.get_batch(), self.evaluate.input_signature[0])

    def _draw(self):
        """A step's input (strategy.draw): this process's next training batch, and with
        several replicas one of each other replica's."""
        return self.strategy.draw(self._batch, self.train_data)

    def train_step(self, batch) -> None:
        """One update on a step's input (strategy.draw), the signal received so far given to
        the strategy first."""
        self.strategy.before_step(self._signal)
        self._concrete_step()(batch)

    def _concrete_step(self):
        """The traced step's concrete function (traced on first use): called with tensors it
        costs a quarter of the tf.function's call, which binds and converts its arguments."""
        if self._step_call is None:
            self._step_call = self._traced_step.get_concrete_function()
        return self._step_call

    def _validation_errors(self) -> dict | None:
        if self.valid_data is None:
            return None
        sums, weight = {}, 0.0
        for _ in range(self.numb_btch):
            batch = self._batch(self.valid_data)
            natoms = float(batch["natoms_vec"][0])
            for name, value in self.evaluate(batch).items():
                sums[name] = sums.get(name, 0.0) + natoms * float(value)
            weight += natoms
        return {name: value / weight for name, value in sums.items()}

    def _display(self, lcurve, step: int, batch: dict) -> None:
        train = {k: float(v) for k, v in self.evaluate(batch).items()}
        valid = self._validation_errors()
        lcurve.write(step, train, valid, float(self.lr.value(step)))

    def _write_summary(self, step: int, batch: dict) -> None:
        """TensorBoard scalars: the errors on the batch just trained on and the learning rate."""
        errors = self.evaluate(batch)
        with self.summary.as_default():
            for name, value in errors.items():
                tf.summary.scalar(name, value, step=step)
            tf.summary.scalar("learning_rate", self.lr.value(step), step=step)
        self.summary.flush()

    def _on_signal(self, signum, frame):
        self._signal = signum

    def run(self, restarted: bool = False) -> None:
        """Trains to numb_steps; SIGINT/SIGTERM stop it with a checkpoint (Interrupted)."""
        training = self.training
        numb_steps = training.numb_steps
        disp_freq, save_freq = training.disp_freq, training.save_freq
        displaying = training.disp_training
        start = int(self.step)
        log.info("start training at lr %.2e (== %.2e), decay_step %d, decay_rate %f, final lr "
                 "will be %.2e", self.lr.value(start), self.lr.value(start), self.lr.decay_steps,
                 self.lr.decay_rate, self.lr.value(numb_steps))
        lcurve = (LearningCurve(training.disp_file, self.loss.error_names,
                                self.valid_data is not None, restarted) if displaying else None)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        if self.whole is not None:
            self.whole.open(restarted)
        self._stepper = ThreadPoolExecutor(1, thread_name_prefix="train_step")
        try:
            self._loop(lcurve, start, numb_steps, disp_freq, save_freq, displaying,
                       restarted)
        finally:
            self._stepper.shutdown()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if lcurve:
                lcurve.close()
            if self.whole is not None:
                self.whole.close()

    def _loop(self, lcurve, start, numb_steps, disp_freq, save_freq, displaying, restarted):
        # The data RNG is used in DeePMD-kit's order (deepmd/train/trainer.py: DPTrainer.train): a fresh run drops one prefetched
        # batch, then draws the first training batch and the step-0 validation batches; each
        # step draws the next batch before its display's validation batches. A checkpoint
        # keeps the sampling state from before its step's prefetch, so that a restarted run
        # draws that batch (and, at a display step, the same validation batches) again.
        timing = _Timing(self.training.time_training)
        last_saved = None
        if not restarted:
            self._batch(self.train_data)  # the prefetch DeePMD-kit's data loader discards
        before_next = self._sampling()
        batch = self._draw()
        # the training step is traced on the stepping thread while the start row's evaluation
        # runs (its graph optimisation and execution release the interpreter)
        tracing = (self._stepper.submit(self._concrete_step)
                   if start < numb_steps else None)
        if displaying and start < numb_steps:  # the row of the start step
            with timing.testing():
                self._display_start(lcurve, start, self.strategy.own(batch), disp_freq)
        if tracing is not None:
            tracing.result()
        step = start
        while step < numb_steps:
            with timing.training():
                running = self._stepper.submit(self.train_step, batch)
                # the next batch is drawn while the step runs: the same draws in the same order
                before_next = self._sampling()
                next_batch = self._draw()
                running.result()
            step += 1
            own = self.strategy.own(batch)
            if self.summary is not None and step % self.training.tensorboard_freq == 0:
                self._write_summary(step, own)
            if displaying and step % disp_freq == 0:
                with timing.testing():
                    self._display(lcurve, step, own)
                timing.progress(step, numb_steps)
                if save_freq > 0 and step % save_freq == 0:
                    self._save(step, before_next)
                    last_saved = step
            if self.whole is not None and self.whole.due(step):
                self._stop |= self.whole.evaluate(step, self.checkpointer.checkpoint)
            stop = self.strategy.stop_signal(self._signal)
            if stop is not None:  # stop soon: no whole-validation evaluation
                self._save(step, before_next, validate=False)
                raise Interrupted(stop)
            if self._stop:  # early stopping: the checkpoint below, then the end
                break
            batch = next_batch
        if last_saved != step:
            self._save(step, before_next)
        if self.training.change_bias_after_training:  # then the checkpoint again, changed
            change_bias_after_training(self.model, self.train_data.systems,
                                       self.model.type_map, self.data_bias_nsample)
            self._save(step, before_next, validate=False)
        timing.finish(disp_freq)

    def _display_start(self, lcurve, start: int, batch: dict, disp_freq: int) -> None:
        """The row of the start step; a run stopped between display steps did not draw
        validation batches there, and draws them again at its next display step."""
        after_batch = self._sampling() if start % disp_freq else None
        self._display(lcurve, start, batch)
        if after_batch is not None:
            self._set_sampling(after_batch)


class _Timing:
    """The loop's clocks: the wall time, the training and testing times and the steps since
    the last progress line, and every step's time (time_training: logged as DeePMD-kit does)."""

    def __init__(self, time_training: bool):
        self.time_training = time_training
        self.wall0 = self.last = time.perf_counter()
        self.steps, self.train, self.test = 0, 0.0, 0.0
        self.step_times = []

    @contextlib.contextmanager
    def training(self):
        """Times one step."""
        t = time.perf_counter()
        yield
        elapsed = time.perf_counter() - t
        self.train += elapsed
        self.step_times.append(elapsed)
        self.steps += 1

    @contextlib.contextmanager
    def testing(self):
        """Times an evaluation (a display)."""
        t = time.perf_counter()
        yield
        self.test += time.perf_counter() - t

    def progress(self, step: int, numb_steps: int) -> None:
        """The progress lines of a display step (rate, ETA); the interval restarts."""
        now = time.perf_counter()
        rate = self.steps / (now - self.last)
        if self.time_training:
            log.info("batch %7d training time %.2f s, testing time %.2f s, total wall "
                     "time %.2f s", step, self.train, self.test, now - self.wall0)
        log.info("step %d/%d (%.1f%%), %.1f steps/s, ETA %s", step, numb_steps,
                 100.0 * step / numb_steps, rate,
                 _format_eta((numb_steps - step) / max(rate, 1e-12)))
        self.last, self.steps, self.train, self.test = now, 0, 0.0, 0.0

    def finish(self, disp_freq: int) -> None:
        """The closing lines: the mean step time (time_training) and the wall time."""
        if self.time_training and self.step_times:
            skip = disp_freq if len(self.step_times) >= 2 * disp_freq else 0
            mean = float(np.mean(self.step_times[skip:]))
            if skip:
                log.info("average training time: %.4f s/batch (exclude first %d batches)", mean,
                         skip)
            else:
                log.info("average training time: %.4f s/batch", mean)
        log.info("finished training")
        log.info("wall time: %.3f s", time.perf_counter() - self.wall0)
