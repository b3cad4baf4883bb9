"""The model agrees with DeePMD-kit's TensorFlow model (3.2.0, whose se_e2_a + type_embedding
graph is v2.2.5's) evaluated with the same weights and statistics: energy, atomic energies,
forces, virial and atomic virial, with and without type embedding, type_one_side true and false,
periodic and open frames, excluded type pairs, fparam/aparam and atom_ener.

DeePMD-kit runs in its own venv in a subprocess (tests/reference/deepmd_oracle.py); skipped with
the reason when that venv cannot be found or created."""
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from model_helpers import Frame, build_model, model_config

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.reference.deepmd_oracle import require_oracle, run_oracle  # noqa: E402

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parent / "deepmd_model_runner.py"
VARIANTS = [(True, True), (True, False), (False, True), (False, False)]
KEYS = ("energy", "atom_energy", "force", "virial", "atom_virial")


def deepmd_model_section(cfg):
    """DeePMD-kit 3.x drops type-embedding biases by default; v2.2.5 (and we, where the script
    does not say use_tebd_bias) keep them."""
    cfg = copy.deepcopy(cfg)
    if "type_embedding" in cfg:
        cfg["type_embedding"].setdefault("use_tebd_bias", True)
    return cfg


# rcut - rcut_smth exact in single precision: DeePMD-kit's ProdEnvMatA computes the width of the
# switch as a float (see test_switch_width_is_rounded_to_single_precision_as_deepmd_kit_does)
RCUT_SMTH_EXACT = 0.5


def case(name, tebd, type_one_side, kind, rcut_smth=RCUT_SMTH_EXACT, ntypes=2, sel=None,
         **extra):
    frame = Frame.random(71, kind, ntypes=ntypes)
    cfg = model_config(sel or frame.sel(), tebd=tebd, type_one_side=type_one_side, neuron=(4, 8, 16),
                       axis_neuron=3, fitting=(12, 12, 12), rcut_smth=rcut_smth, **extra)
    model = build_model(cfg, stats_seed=3)
    rng = np.random.default_rng(12)
    coords = frame.coord[None] + rng.normal(scale=0.05, size=(2, frame.nat, 3))
    if cfg["fitting_net"]["numb_fparam"]:
        frame.fparam = rng.normal(size=cfg["fitting_net"]["numb_fparam"])
    if cfg["fitting_net"]["numb_aparam"]:
        frame.aparam = rng.normal(size=frame.nat * cfg["fitting_net"]["numb_aparam"])
    return name, cfg, model, frame, coords


# (type embedding, type_one_side, boundary): every variant periodic, three of them also open
# (DeePMD-kit's per-type two-side graph is the slowest to build)
VARIANT_CASES = [(tebd, side, "triclinic") for tebd, side in VARIANTS] + [
    (True, True, "open"), (True, False, "open"), (False, True, "open")]
# three types with an excluded pair
EXCLUDED_CASES = [(True, False), (False, True)]


def variant_name(tebd, type_one_side, kind):
    return (f"{'tebd' if tebd else 'per_type'}-{'one_side' if type_one_side else 'two_side'}-"
            f"{kind}")


def cases():
    out = [case(variant_name(*v), *v) for v in VARIANT_CASES]
    out += [case("excluded-" + variant_name(tebd, side, "triclinic"), tebd, side, "triclinic",
                 ntypes=3, exclude_types=[[0, 2]]) for tebd, side in EXCLUDED_CASES]
    for tebd in (True, False):
        out.append(case(f"parameters-atom_ener-{'tebd' if tebd else 'per_type'}", tebd, tebd,
                        "triclinic", numb_fparam=2, numb_aparam=1, atom_ener=[0.5, None]))
    out.append(case("inexact_switch_width", True, True, "open", rcut_smth=0.8))
    out += [case(ebd_v2_name(side, kind, ntypes), True, side, kind, ntypes=ntypes,
                 descriptor="se_a_ebd_v2", exclude_types=[[0, 2]] if ntypes == 3 else [])
            for side, kind, ntypes in EBD_V2_CASES]
    out += [case(f"{name}-no_tebd_bias", True, True, "triclinic", descriptor=descriptor,
                 use_tebd_bias=False) for name, descriptor in NO_TEBD_BIAS_CASES]
    out += [case(f"{name}-econf", True, side, "triclinic", descriptor=descriptor, ntypes=3,
                 use_econf_tebd=True) for name, descriptor, side in ECONF_CASES]
    out.append(case("ebd_v2-default_type_embedding", False, False, "triclinic",
                    descriptor="se_a_ebd_v2"))
    out += [atten_case(name, **spec) for name, spec in ATTEN_CASES.items()]
    return out


# DPA-1 (SPEC 15.9 item 1, reduced): tebd_input_mode x smooth x attn_layer x attn_dotr x
# attn_mask x type_one_side x exclude_types x set_davg_zero, rcut_smth not exact in float32, an
# overflowing sel, and se_atten_v2 with DeePMD-kit's default type embedding
ATTEN_CASES = {
    "atten-concat": dict(keys={"attn_layer": 2}),
    "atten-concat-one_side-mask-no_dotr-open": dict(
        kind="open", type_one_side=True, keys={"attn_layer": 2, "attn_mask": True,
                                               "attn_dotr": False}),
    "atten-concat-smooth-davg": dict(keys={"attn_layer": 2, "smooth_type_embedding": True},
                                     set_davg_zero=False, rcut_smth=0.8),
    "atten-concat-excluded": dict(ntypes=3, exclude_types=[[0, 1]], keys={"attn_layer": 2}),
    "atten-concat-no_attention-davg": dict(keys={"attn_layer": 0}, set_davg_zero=False),
    "atten-strip": dict(keys={"attn_layer": 2, "tebd_input_mode": "strip"}),
    "atten-strip-smooth-excluded-davg": dict(
        ntypes=3, exclude_types=[[0, 2]], set_davg_zero=False,
        keys={"attn_layer": 2, "tebd_input_mode": "strip", "smooth_type_embedding": True}),
    "atten-concat-overflow": dict(sel=[3, 4], keys={"attn_layer": 1}),
    "atten_v2": dict(descriptor="se_atten_v2", set_davg_zero=False, keys={"attn_layer": 2}),
    "atten_v2-excluded-open": dict(descriptor="se_atten_v2", kind="open", ntypes=3,
                                   exclude_types=[[1, 2]], keys={"attn_layer": 1}),
    "atten_v2-default_type_embedding": dict(descriptor="se_atten_v2", tebd=False,
                                            keys={"attn_layer": 1}),
}


def atten_case(name, keys, descriptor="se_atten", kind="triclinic", type_one_side=False,
               tebd=True, set_davg_zero=True, **extra):
    """A DPA-1 case: small nets, attention width 5, resnet_dt off (DeePMD-kit's default)."""
    return case(name, tebd, type_one_side, kind, descriptor=descriptor,
                set_davg_zero=set_davg_zero,
                descriptor_keys={"attn": 5, "resnet_dt": False, **keys}, **extra)


# DeePMD-kit 3.x's type embedding without biases (use_tebd_bias false), per descriptor
NO_TEBD_BIAS_CASES = [("tebd", "se_e2_a"), ("ebd_v2", "se_a_ebd_v2")]

# the type embedding net on electron configurations (use_econf_tebd), per descriptor
ECONF_CASES = [("tebd", "se_e2_a", False), ("ebd_v2", "se_a_ebd_v2", True)]

# se_a_ebd_v2 (type_one_side, boundary, ntypes): three types with the excluded pair (0, 2)
EBD_V2_CASES = [(True, "triclinic", 2), (False, "triclinic", 2), (True, "open", 2),
                (False, "open", 2), (True, "triclinic", 3), (False, "triclinic", 3)]


def ebd_v2_name(type_one_side, kind, ntypes):
    return (f"ebd_v2-{'one_side' if type_one_side else 'two_side'}-{kind}"
            + ("-excluded" if ntypes == 3 else ""))


@pytest.fixture(scope="module")
def agreement(tmp_path_factory):
    require_oracle()
    tmp = tmp_path_factory.mktemp("deepmd_model")
    built = cases()
    arrays, meta, ours = {}, [], []
    for i, (name, cfg, model, frame, coords) in enumerate(built):
        nf = coords.shape[0]
        box = np.zeros((nf, 9)) if frame.box is None else np.tile(frame.box.reshape(9), (nf, 1))
        inputs = {"coord": coords.reshape(nf, -1), "atype": np.tile(frame.atype, (nf, 1)),
                  "natoms": frame.natoms, "box": box, "mesh": frame.mesh}
        if frame.fparam is not None:
            inputs["fparam"] = np.tile(frame.fparam, (nf, 1))
        if frame.aparam is not None:
            inputs["aparam"] = np.tile(frame.aparam, (nf, 1))
        arrays.update({f"c{i}/in/{k}": v for k, v in inputs.items()})
        arrays.update({f"c{i}/var/{k}": v.numpy() for k, v in model.graph_variables().items()})
        meta.append({"model": deepmd_model_section(cfg)})
        out = frame.evaluate(model, coords)
        out["weights"] = {k: v.numpy() for k, v in model.graph_variables().items()}
        ours.append((name, out))
    np.savez(tmp / "in.npz", meta=json.dumps(meta), **arrays)
    proc = run_oracle([RUNNER, tmp / "in.npz", tmp / "out.npz"], tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    theirs = np.load(tmp / "out.npz")
    return {name: (out, {k[len(f"c{i}/"):]: theirs[k] for k in theirs.files
                         if k.startswith(f"c{i}/")})
            for i, (name, out) in enumerate(ours)}


def assert_agree(ours, theirs):
    for key in KEYS:
        expected = theirs[key].reshape(ours[key].shape)
        np.testing.assert_allclose(ours[key], expected, rtol=1e-12,
                                   atol=1e-12 * np.abs(expected).max(), err_msg=key)


@pytest.mark.parametrize("case", [variant_name(*v) for v in VARIANT_CASES])
def test_energy_force_virial_match_deepmd_kit(agreement, case):
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)


@pytest.mark.parametrize("case", ["excluded-" + variant_name(tebd, side, "triclinic")
                                  for tebd, side in EXCLUDED_CASES])
def test_excluded_type_pairs_match_deepmd_kit(agreement, case):
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)


@pytest.mark.parametrize("tebd", ["tebd", "per_type"])
def test_fparam_aparam_and_atom_ener_match_deepmd_kit(agreement, tebd):
    ours, theirs = agreement[f"parameters-atom_ener-{tebd}"]
    assert_agree(ours, theirs)


@pytest.mark.parametrize("case", [variant_name(*v) for v in VARIANT_CASES])
def test_every_deepmd_kit_weight_used_comes_from_the_model(agreement, case):
    """Every variable of the model has its DeePMD-kit graph name; DeePMD-kit's variables left
    unset are only timesteps of layers without a residual branch (created but unused there) and
    its 3.x output statistics (zero bias, unit scale)."""
    _, theirs = agreement[case]
    assert list(theirs["unmatched"]) == []
    for name in theirs["missing"]:
        name = str(name)
        if name.startswith("model_attr/") and "/t_out_" in name:
            continue
        assert "/idt_1" in name, name  # first embedding layer: width 1 or 1 + te -> neuron[0]


def test_switch_width_is_rounded_to_single_precision_as_deepmd_kit_does(agreement):
    ours, theirs = agreement["inexact_switch_width"]
    expected = theirs["energy"]
    np.testing.assert_allclose(ours["energy"], expected, rtol=1e-12)


@pytest.mark.parametrize("case", [ebd_v2_name(*c) for c in EBD_V2_CASES])
def test_se_a_ebd_v2_matches_deepmd_kit(agreement, case):
    """Stripped type embedding, type_one_side true and false, periodic and open, three types
    with an excluded pair; resnet_dt on (the one-side type net's first layer is residual)."""
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)
    assert list(theirs["unmatched"]) == []
    assert all("/idt_1" in str(n) or "/t_out_" in str(n) for n in theirs["missing"])


def test_se_a_ebd_v2_without_type_embedding_section_matches_deepmd_kits_default(agreement):
    """Without model/type_embedding DeePMD-kit 3.x builds a linear one without biases (no
    activation, use_tebd_bias false); so does this package."""
    ours, theirs = agreement["ebd_v2-default_type_embedding"]
    assert_agree(ours, theirs)
    assert list(theirs["unmatched"]) == []


@pytest.mark.parametrize("case", [ebd_v2_name(*c) for c in EBD_V2_CASES[:2]])
def test_se_a_ebd_v2_seeds_give_deepmd_kits_initial_weights(agreement, case):
    """The same seeds give DeePMD-kit's initial weights, exactly, for every seeded variable
    (type embedding, radial and type nets, fitting)."""
    ours, theirs = agreement[case]
    seeded = [n for n in ours["weights"] if not n.startswith(("descrpt_attr/", "fitting_attr/"))]
    assert any(n.endswith("_side_ebd") for n in seeded)
    for name in seeded:
        np.testing.assert_array_equal(ours["weights"][name],
                                      theirs["init/" + name].reshape(ours["weights"][name].shape),
                                      err_msg=name)


@pytest.mark.parametrize("case", [f"{name}-no_tebd_bias" for name, _ in NO_TEBD_BIAS_CASES])
def test_use_tebd_bias_false_matches_deepmd_kit_and_its_seeded_weights(agreement, case):
    """use_tebd_bias false: a type embedding net without biases, as DeePMD-kit 3.x builds it by
    default: the same numbers on the same weights, the same initial weights from the same seeds,
    and every variable of DeePMD-kit's graph one of ours (no type-embedding bias anywhere)."""
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)
    assert list(theirs["unmatched"]) == []
    assert not any(n.startswith("type_embed_net/bias") for n in ours["weights"])
    assert any(n.startswith("type_embed_net/matrix") for n in ours["weights"])
    seeded = [n for n in ours["weights"] if not n.startswith(("descrpt_attr/", "fitting_attr/"))]
    for name in seeded:
        np.testing.assert_array_equal(ours["weights"][name],
                                      theirs["init/" + name].reshape(ours["weights"][name].shape),
                                      err_msg=name)


@pytest.mark.parametrize("case", list(ATTEN_CASES))
def test_dpa1_matches_deepmd_kit(agreement, case):
    """se_atten and se_atten_v2 on the same weights and statistics: energy, atomic energies,
    forces, virials (1e-12); every variable of DeePMD-kit's graph is one of ours."""
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)
    assert list(theirs["unmatched"]) == []
    assert all("/t_out_" in str(n) or "/idt_" in str(n) for n in theirs["missing"]), \
        list(theirs["missing"])


@pytest.mark.parametrize("case", ["atten-concat", "atten-strip", "atten_v2"])
def test_dpa1_seeds_give_deepmd_kits_initial_weights(agreement, case):
    """The same seeds give DeePMD-kit's initial weights, bit for bit: type embedding, the
    embedding nets, every attention projection and normalisation, the fitting."""
    ours, theirs = agreement[case]
    seeded = [n for n in ours["weights"] if not n.startswith(("descrpt_attr/", "fitting_attr/"))]
    assert any(n.startswith("attention_layer_1/c_out") for n in seeded)
    for name in seeded:
        np.testing.assert_array_equal(ours["weights"][name],
                                      theirs["init/" + name].reshape(ours["weights"][name].shape),
                                      err_msg=name)


@pytest.mark.parametrize("case", [f"{name}-econf" for name, _, _ in ECONF_CASES])
def test_use_econf_tebd_matches_deepmd_kit_and_its_seeded_weights(agreement, case):
    """use_econf_tebd: the type embedding net reads each element's electron configuration (118
    values): the same numbers as DeePMD-kit on the same weights, its initial weights from the
    same seeds, every variable of its graph one of ours."""
    ours, theirs = agreement[case]
    assert_agree(ours, theirs)
    assert list(theirs["unmatched"]) == []
    assert ours["weights"]["type_embed_net/matrix_1"].shape[0] == 118
    seeded = [n for n in ours["weights"] if not n.startswith(("descrpt_attr/", "fitting_attr/"))]
    for name in seeded:
        np.testing.assert_array_equal(ours["weights"][name],
                                      theirs["init/" + name].reshape(ours["weights"][name].shape),
                                      err_msg=name)
