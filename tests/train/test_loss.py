"""The energy loss equals a direct NumPy evaluation of DeePMD-kit's formula; inactive terms are
neither computed nor reported; missing labels (find_X = 0) switch their terms off."""
import json

import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.config import ConfigError, build_config, normalize
from deepmd_tebd.learning_rate import loss_prefactor
from deepmd_tebd.loss import EnergyLoss

NATOMS = 6
NF = 3


def batch(rng, find=1.0):
    label = {"energy": rng.normal(size=NF), "force": rng.normal(size=(NF, NATOMS * 3)),
             "virial": rng.normal(size=(NF, 9)), "atom_ener": rng.normal(size=(NF, NATOMS)),
             "atom_pref": rng.uniform(0, 2, size=(NF, NATOMS))}
    pred = {"energy": rng.normal(size=NF), "force": rng.normal(size=(NF, NATOMS * 3)),
            "virial": rng.normal(size=(NF, 9)), "atom_energy": rng.normal(size=(NF, NATOMS))}
    for key in ("energy", "force", "virial", "atom_ener", "atom_pref"):
        label[f"find_{key}"] = find
    return pred, label


def numpy_loss(cfg, lr, start_lr, pred, label):
    p = {t: label[f"find_{k}"] * loss_prefactor(lr, start_lr, cfg[f"start_pref_{t}"],
                                                 cfg[f"limit_pref_{t}"])
         for t, k in [("e", "energy"), ("f", "force"), ("v", "virial"), ("ae", "atom_ener"),
                      ("pf", "atom_pref")]}
    de = pred["energy"] - label["energy"]
    df = (pred["force"] - label["force"]).reshape(-1, 3)
    if cfg.get("relative_f") is not None:
        df = df / (np.linalg.norm(label["force"].reshape(-1, 3), axis=1, keepdims=True)
                   + cfg["relative_f"])
    dv = pred["virial"] - label["virial"]
    dae = pred["atom_energy"] - label["atom_ener"]
    w = np.repeat(label["atom_pref"].reshape(-1, 1), 3, axis=1)
    return (p["e"] * np.mean(de ** 2) / NATOMS + p["f"] * np.mean(df ** 2)
            + p["v"] * np.mean(dv ** 2) / NATOMS + p["ae"] * np.mean(dae ** 2)
            + p["pf"] * np.mean(w * df ** 2)), {
        "rmse_e": np.sqrt(np.mean(de ** 2)) / NATOMS, "rmse_f": np.sqrt(np.mean(df ** 2)),
        "rmse_v": np.sqrt(np.mean(dv ** 2)) / NATOMS, "rmse_ae": np.sqrt(np.mean(dae ** 2)),
        "rmse_pf": np.sqrt(np.mean(w * df ** 2))}


ALL_TERMS = {"start_pref_e": 0.02, "limit_pref_e": 1.0, "start_pref_f": 1000.0,
             "limit_pref_f": 1.0, "start_pref_v": 0.5, "limit_pref_v": 2.0,
             "start_pref_ae": 0.3, "limit_pref_ae": 0.1, "start_pref_pf": 1.0,
             "limit_pref_pf": 4.0}


@pytest.mark.parametrize("cfg", [ALL_TERMS, {**ALL_TERMS, "relative_f": 0.5}])
@pytest.mark.parametrize("lr", [1e-3, 3e-5])
def test_loss_matches_formula(cfg, lr):
    pred, label = batch(np.random.default_rng(0))
    loss = EnergyLoss(loss_settings(cfg), start_lr=1e-3)
    value, errors = loss(tf.constant(lr, tf.float64), pred, label, np.array([NATOMS, NATOMS, 2, 4]))
    expected, expected_errors = numpy_loss(cfg, lr, 1e-3, pred, label)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(errors["rmse"]) == pytest.approx(np.sqrt(expected), rel=1e-12)
    for name, v in expected_errors.items():
        assert float(errors[name]) == pytest.approx(v, rel=1e-12)
    assert list(errors) == ["rmse", "rmse_e", "rmse_ae", "rmse_f", "rmse_v", "rmse_pf"]


def test_inactive_terms_are_not_reported():
    loss = EnergyLoss(loss_settings({"start_pref_v": 0, "limit_pref_v": 0}), start_lr=1e-3)
    assert loss.error_names == ["rmse", "rmse_e", "rmse_f"]
    assert loss.labels == ["energy", "force"]


def test_missing_label_switches_its_term_off():
    pred, label = batch(np.random.default_rng(1), find=0.0)
    value, _ = EnergyLoss(loss_settings(ALL_TERMS), 1e-3)(1e-3, pred, label, np.array([NATOMS, NATOMS, 6]))
    assert float(value) == 0.0


def test_generalised_force_loss_is_refused():
    with pytest.raises(ConfigError, match="loss/start_pref_gf: the generalised-force loss"):
        loss_settings({"start_pref_gf": 1.0, "numb_generalized_coord": 2})


def test_atom_energy_coefficients_are_refused():
    with pytest.raises(ConfigError, match="loss/enable_atom_ener_coeff"):
        loss_settings({"enable_atom_ener_coeff": True})


def loss_settings(section):
    """The typed `loss` settings of a loss section (defaults filled by the normaliser)."""
    script = {"model": {"type_map": ["A"], "descriptor": {"type": "se_e2_a"},
                        "fitting_net": {}},
              "learning_rate": {"type": "exp"}, "loss": {"type": "ener", **section},
              "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}
    return build_config(normalize(script, "loss.json")).loss


# DeePMD-kit 3.x's loss keys: Huber residuals (one delta, or energy/force/virial deltas), and
# energy and virial squares divided by N^2 (intensive_ener_virial)
KEYS_3X = [{"use_huber": True, "huber_delta": 0.3},
           {"use_huber": True, "huber_delta": [0.5, 0.2, 2.0]}, {"intensive_ener_virial": True}]
TERMS_3X = {k: v for k, v in ALL_TERMS.items() if "_pf" not in k}  # Huber has no pf form


def numpy_loss_3x(cfg, lr, pred, label):
    """DeePMD-kit 3.2's TensorFlow formula (deepmd/tf/loss/ener.py), in NumPy."""
    p = {t: loss_prefactor(lr, 1e-3, cfg[f"start_pref_{t}"], cfg[f"limit_pref_{t}"])
         for t in ("e", "f", "v", "ae")}
    de = pred["energy"] - label["energy"]
    df = pred["force"] - label["force"]
    dv = pred["virial"] - label["virial"]
    dae = pred["atom_energy"] - label["atom_ener"]
    if not cfg.get("use_huber"):
        k = 2 if cfg.get("intensive_ener_virial") else 1
        return (p["e"] * np.mean(de ** 2) / NATOMS ** k + p["f"] * np.mean(df ** 2)
                + p["v"] * np.mean(dv ** 2) / NATOMS ** k + p["ae"] * np.mean(dae ** 2))
    delta = cfg["huber_delta"]
    d_e, d_f, d_v = delta if isinstance(delta, list) else [delta] * 3

    def huber(r, d):
        return np.mean(np.where(np.abs(r) <= d, 0.5 * r ** 2, d * (np.abs(r) - 0.5 * d)))

    return (p["e"] * huber(de / NATOMS, d_e) + p["f"] * huber(df, d_f)
            + p["v"] * huber(dv / NATOMS, d_v) + p["ae"] * huber(dae, d_e))


@pytest.mark.parametrize("keys", KEYS_3X)
def test_3x_loss_keys_match_the_formula(keys):
    pred, label = batch(np.random.default_rng(2))
    cfg = {**TERMS_3X, **keys}
    value, errors = EnergyLoss(loss_settings(cfg), 1e-3)(tf.constant(5e-4, tf.float64), pred,
                                                          label, np.array([NATOMS, NATOMS, 2, 4]))
    assert float(value) == pytest.approx(numpy_loss_3x(cfg, 5e-4, pred, label), rel=1e-12)
    assert float(errors["rmse_f"]) == pytest.approx(  # the reported errors stay the rmse
        np.sqrt(np.mean((pred["force"] - label["force"]) ** 2)), rel=1e-12)


DEEPMD_LOSS = """
import json, sys
import numpy as np
from deepmd.tf.env import tf
from deepmd.tf.loss.ener import EnerStdLoss
a = json.loads(sys.argv[1])
arrays = np.load(a["arrays"])
loss = EnerStdLoss(starter_learning_rate=1e-3, **a["cfg"])
model = {k: tf.constant(arrays["pred_" + k]) for k in ("energy", "force", "virial", "atom_ener")}
label = {k: tf.constant(arrays["label_" + k])
         for k in ("energy", "force", "virial", "atom_ener", "atom_pref")}
label.update({f"find_{k}": 1.0 for k in ("energy", "force", "virial", "atom_ener", "atom_pref")})
value, _ = loss.build(tf.constant(a["lr"], tf.float64), tf.constant(a["natoms"]), model, label,
                      "test")
with tf.Session() as session:
    print(json.dumps(float(session.run(value))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("keys", KEYS_3X)
def test_3x_loss_keys_match_deepmd_kit(keys, tmp_path):
    from reference.deepmd_oracle import run_oracle_script

    pred, label = batch(np.random.default_rng(3))
    cfg = {**TERMS_3X, **keys}
    np.savez(tmp_path / "arrays.npz", **{f"pred_{k}": pred[k if k != "atom_ener" else
                                                             "atom_energy"]
                                         for k in ("energy", "force", "virial", "atom_ener")},
             **{f"label_{k}": label[k] for k in ("energy", "force", "virial", "atom_ener",
                                                  "atom_pref")})
    theirs = json.loads(run_oracle_script(DEEPMD_LOSS, {
        "arrays": str(tmp_path / "arrays.npz"), "cfg": cfg, "lr": 5e-4,
        "natoms": [NATOMS, NATOMS, 2, 4]}, tmp_path))
    value, _ = EnergyLoss(loss_settings(cfg), 1e-3)(tf.constant(5e-4, tf.float64), pred, label,
                                                    np.array([NATOMS, NATOMS, 2, 4]))
    assert float(value) == pytest.approx(theirs, rel=1e-12)


def test_huber_with_atom_prefactor_forces_is_refused():
    with pytest.raises(ConfigError, match="loss/use_huber: not with start_pref_pf"):
        loss_settings({**ALL_TERMS, "use_huber": True})


def test_huber_reads_only_the_labels_of_its_active_terms():
    """A batch holds only the labels of the active terms: Huber with energy and force alone
    needs no virial or atomic energies."""
    pred, label = batch(np.random.default_rng(4))
    cfg = {"start_pref_e": 0.02, "limit_pref_e": 1.0, "start_pref_f": 1000.0,
           "limit_pref_f": 1.0, "use_huber": True, "huber_delta": 0.3}
    loss = EnergyLoss(loss_settings(cfg), 1e-3)
    needed = {k: label[k] for k in loss.labels}
    needed.update({k: v for k, v in label.items() if k.startswith("find_")})
    value, _ = loss(tf.constant(5e-4, tf.float64), pred, needed, np.array([NATOMS, NATOMS, 2, 4]))
    full = {**TERMS_3X, "start_pref_v": 0.0, "limit_pref_v": 0.0, "start_pref_ae": 0.0,
            "limit_pref_ae": 0.0, "use_huber": True, "huber_delta": 0.3}
    assert loss.labels == ["energy", "force"]
    assert float(value) == pytest.approx(numpy_loss_3x(full, 5e-4, pred, label), rel=1e-12)
