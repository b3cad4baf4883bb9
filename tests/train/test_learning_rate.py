"""The exp schedule: DeePMD-kit's own schedule where both define it, and DeePMD-kit 2.2's rule
when decay_steps >= numb_steps."""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.config.objects import LearningRateConfig
from deepmd_tebd.learning_rate import ExpDecayLR, loss_prefactor
from reference.deepmd_oracle import run_oracle_script

CASES = [(1e-3, 3.51e-8, 5000, 1000000), (1e-3, 1e-8, 100, 2000), (5e-3, 1e-6, 7, 1000)]


def deepmd_schedule(start_lr, stop_lr, decay_steps, numb_steps, steps):
    code = ("import json,sys\nfrom deepmd.dpmodel.utils.learning_rate import LearningRateExp\n"
            "a=json.loads(sys.argv[1])\n"
            "lr=LearningRateExp(start_lr=a[0], stop_lr=a[1], decay_steps=a[2], num_steps=a[3])\n"
            "print(json.dumps([float(lr.value(s)) for s in a[4]]))\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = run_oracle_script(code, [start_lr, stop_lr, decay_steps, numb_steps, steps],
                                Path(tmp), timeout=300)
    return np.array(json.loads(out))


@pytest.mark.slow
@pytest.mark.parametrize("start,stop,decay,nsteps", CASES)
def test_schedule_matches_deepmd(start, stop, decay, nsteps):
    steps = sorted({0, 1, decay - 1, decay, decay + 1, 3 * decay, nsteps // 2, nsteps - 1})
    lr = ExpDecayLR.from_config(LearningRateConfig(start, stop, decay, "linear"),
                                nsteps)
    ours = np.array([lr.value(s) for s in steps])
    np.testing.assert_allclose(ours, deepmd_schedule(start, stop, decay, nsteps, steps),
                               rtol=1e-10)


DEEPMD_3X_SCHEDULE = """
import json, sys
from deepmd.dpmodel.utils.learning_rate import LearningRateExp
settings, steps = json.loads(sys.argv[1])
lr = LearningRateExp(**settings)
print(json.dumps([float(lr.value(s)) for s in steps]))
"""
# DeePMD-kit 3.x's keys: warm-up (steps or ratio, start factor), stop_lr_ratio, smooth decay,
# an explicit decay_rate, and decay_steps past the decay phase
CASES_3X = [
    dict(start_lr=1e-3, stop_lr=1e-5, decay_steps=100, num_steps=1000, warmup_steps=100,
         warmup_start_factor=0.1),
    dict(start_lr=1e-3, stop_lr_ratio=0.01, decay_steps=50, num_steps=2000, smooth=True),
    dict(start_lr=2e-3, stop_lr=1e-6, decay_steps=30, num_steps=900, decay_rate=0.95),
    dict(start_lr=1e-3, stop_lr=1e-8, decay_steps=5000, num_steps=1000, warmup_ratio=0.1),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES_3X)))
def test_deepmd_3x_schedule_keys_match_deepmd(case, tmp_path):
    settings = CASES_3X[case]
    start, nsteps = settings["start_lr"], settings["num_steps"]
    ratio = settings.get("stop_lr_ratio")
    config = LearningRateConfig(
        start, start * ratio if ratio else settings["stop_lr"], settings["decay_steps"],
        "linear", decay_rate=settings.get("decay_rate"),
        warmup_steps=settings.get("warmup_steps", 0), warmup_ratio=settings.get("warmup_ratio"),
        warmup_start_factor=settings.get("warmup_start_factor", 0.0),
        smooth=settings.get("smooth", False))
    lr = ExpDecayLR.from_config(config, nsteps)
    steps = sorted(set(range(0, nsteps, 7)) | {1, 99, 100, 101, nsteps - 1})
    theirs = np.array(json.loads(run_oracle_script(DEEPMD_3X_SCHEDULE, [settings, steps],
                                                   tmp_path)))
    for form in ([lr.value(int(s)) for s in steps], lr.value(np.array(steps)),
                 lr.value(tf.constant(steps, tf.int64)).numpy()):
        np.testing.assert_allclose(np.array(form), theirs, rtol=1e-12)


def test_schedule_reaches_stop_lr_and_is_a_staircase():
    lr = ExpDecayLR.from_config(LearningRateConfig(1e-3, 3.51e-8, 5000, "linear"),
                                1000000)
    assert lr.value(0) == 1e-3 and lr.value(4999) == 1e-3 and lr.value(5000) < 1e-3
    assert lr.value(1000000) == pytest.approx(3.51e-8, rel=1e-12)


@pytest.mark.parametrize("nsteps,expected_decay", [(200, 200 // 100 + 1), (1000, 1000 // 100 + 1),
                                                   (20000, 100)])
def test_long_decay_steps_replaced_by_deepmd_rule(nsteps, expected_decay):
    lr = ExpDecayLR.from_config(LearningRateConfig(1e-3, 1e-8, 10 ** 7, "linear"),
                                nsteps)
    assert lr.decay_steps == expected_decay
    assert lr.value(nsteps) == pytest.approx(1e-8 * (1e-3 / 1e-8) ** (
        1 - (nsteps // expected_decay) * expected_decay / nsteps), rel=1e-10)


def test_int_numpy_and_tensor_steps_agree():
    lr = ExpDecayLR.from_config(LearningRateConfig(1e-3, 1e-8, 50, "linear"), 1000)
    steps = np.arange(0, 1000, 37)
    as_int = np.array([lr.value(int(s)) for s in steps])
    np.testing.assert_allclose(lr.value(steps), as_int, rtol=1e-14)
    np.testing.assert_allclose(lr.value(tf.constant(steps)).numpy(), as_int, rtol=1e-14)


def test_prefactor_moves_from_start_to_limit_with_lr():
    assert loss_prefactor(1e-3, 1e-3, 1000.0, 1.0) == 1000.0
    assert loss_prefactor(0.0, 1e-3, 1000.0, 1.0) == 1.0
    assert loss_prefactor(5e-4, 1e-3, 0.02, 1.0) == pytest.approx(0.51)
