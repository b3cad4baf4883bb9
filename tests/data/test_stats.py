"""Data statistics (deepmd_tebd/data/stats.py): descriptor davg/dstd against a direct NumPy
evaluation on the reference environment matrix and against DeePMD-kit 3.2 on the water data;
the energy bias by least squares (also against DeePMD-kit); fparam/aparam statistics; and the
statistics batches drawn without system draws."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from deepmd_tebd.data.data_system import DataSystem
from deepmd_tebd.data.stats import (
    collect_stat_batches,
    compute_aparam_stats,
    compute_descriptor_stats,
    compute_energy_bias,
    compute_fparam_stats,
    descriptor_stats_from_sums,
    descriptor_sums,
    energy_bias_and_std,
    energy_bias_lstsq,
    env_mat_sums,
)
from deepmd_tebd.model.env_mat import raw_env_mat
from reference.deepmd_oracle import require_oracle, run_oracle_script
from reference.env_mat import prod_env_mat_a_ref, random_system
from shared_paths import WATER, needs_water


RCUT, RCUT_SMTH = 6.0, 0.5


def se_a_stats(batches, ntypes, sel, rcut, rcut_smth, set_davg_zero=False):
    """davg, dstd of the batches with the environment matrix of ProdEnvMatA (the se_e2_a
    family's statistics input)."""
    assert len(sel) == ntypes
    return compute_descriptor_stats(batches, lambda b: raw_env_mat(b, sel, rcut, rcut_smth),
                                    ntypes, sum(sel), rcut, set_davg_zero)


def frames_batch(seed, kind, nframes, sel_types=2, natoms=None):
    """A batch of `nframes` jittered copies of one random frame (atoms sorted by type)."""
    rng = np.random.default_rng(seed)
    coord, atype, box = random_system(seed, kind, rcut=RCUT, natoms=natoms, ntypes=sel_types)
    coords = np.stack([coord + rng.normal(0, 0.05, coord.shape) for _ in range(nframes)])
    natoms = atype.size
    return {
        "coord": coords.reshape(nframes, natoms * 3),
        "box": np.tile(np.zeros(9) if box is None else box.reshape(9), (nframes, 1)),
        "type": np.tile(atype, (nframes, 1)).astype(np.int32),
        "natoms_vec": np.array([natoms, natoms, *np.bincount(atype, minlength=sel_types)],
                               dtype=np.int32),
        "default_mesh": np.zeros(0 if box is None else 6, dtype=np.int32),
    }, box


def direct_stats(batches_with_boxes, ntypes, sel):
    """DeePMD-kit's descriptor statistics (deepmd/descriptor/se_a.py) written out: per centre type, the mean and population std of s over all slots,
    and the std of all three angular components together, from the NumPy reference matrix."""
    nnei = sum(sel)
    s_values = [[] for _ in range(ntypes)]
    a_values = [[] for _ in range(ntypes)]
    for batch, box in batches_with_boxes:
        nframes, natoms = batch["type"].shape
        for f in range(nframes):
            em = prod_env_mat_a_ref(batch["coord"][f].reshape(natoms, 3), batch["type"][f], box,
                                    np.zeros((ntypes, 4 * nnei)), np.ones((ntypes, 4 * nnei)),
                                    sel, RCUT, RCUT_SMTH)[0].reshape(natoms, nnei, 4)
            for t in range(ntypes):
                rows = em[batch["type"][f] == t]
                s_values[t].append(rows[..., 0].ravel())
                a_values[t].append(rows[..., 1:].ravel())
    davg = np.zeros((ntypes, 4 * nnei))
    dstd = np.zeros((ntypes, 4 * nnei))
    for t in range(ntypes):
        s, a = np.concatenate(s_values[t]), np.concatenate(a_values[t])
        if s.size == 0:
            dstd[t] = 1.0 / RCUT
            continue
        davg[t] = np.tile([s.mean(), 0, 0, 0], nnei)
        dstd[t] = np.tile([max(s.std(), 0.01)] + [max(a.std(), 0.01)] * 3, nnei)
    return davg, dstd


# --------------------------------------------------------------------------------------------
# Descriptor statistics


def test_descriptor_stats_equal_direct_numpy_evaluation():
    sel = [20, 40]   # more slots than neighbours: empty slots count as zeros
    batches = [frames_batch(1, "orthorhombic", 2, natoms=30),
               frames_batch(2, "triclinic", 1, natoms=24),
               frames_batch(3, "open", 2, natoms=12)]
    davg, dstd = se_a_stats([b for b, _ in batches], 2, sel, RCUT, RCUT_SMTH)
    ref_avg, ref_std = direct_stats(batches, 2, sel)
    np.testing.assert_allclose(davg, ref_avg, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dstd, ref_std, rtol=1e-10)


def test_a_systems_batches_share_one_env_mat_call_and_give_the_same_sums_to_the_bit():
    sel = [20, 40]
    one = [frames_batch(seed, "orthorhombic", n, natoms=30)[0] for seed, n in ((1, 2), (1, 1))]
    one[1]["type"] = one[1]["type"][0]          # a type row shared by the frames
    other = frames_batch(2, "triclinic", 2, natoms=24)[0]
    batches = [one, [other, frames_batch(3, "triclinic", 1, natoms=24)[0]]]
    calls = []

    def env_mat(batch):
        calls.append(len(batch["coord"]))
        return raw_env_mat(batch, sel, RCUT, RCUT_SMTH)

    joined = descriptor_sums(batches, env_mat, 2, sum(sel))
    assert calls == [3, 3]                     # one call per system, all its frames
    alone = np.zeros((2, 5))
    for batch in [*one, *batches[1]]:
        alone += env_mat_sums(raw_env_mat(batch, sel, RCUT, RCUT_SMTH), batch["type"], 2)
    np.testing.assert_array_equal(joined, alone)


def test_type_without_atoms_gets_zero_avg_and_inverse_rcut_std():
    batch, box = frames_batch(4, "orthorhombic", 1, natoms=20)   # types 0 and 1 only
    batch["natoms_vec"] = np.append(batch["natoms_vec"], 0).astype(np.int32)
    sel = [10, 20, 5]
    davg, dstd = se_a_stats([batch], 3, sel, RCUT, RCUT_SMTH)
    np.testing.assert_array_equal(davg[2], 0.0)
    np.testing.assert_array_equal(dstd[2], 1.0 / RCUT)
    ref_avg, ref_std = direct_stats([(batch, box)], 3, sel)
    np.testing.assert_allclose(dstd, ref_std, rtol=1e-10)
    np.testing.assert_allclose(davg, ref_avg, rtol=1e-10, atol=1e-14)


def test_constant_environment_std_is_floored_at_0_01():
    raw = np.zeros((2, 3, 4 * 5))
    raw[..., 0::4] = 0.7                   # every slot s = 0.7, angular parts 0
    sums = env_mat_sums(raw, np.array([0, 0, 1]), 2)
    davg, dstd = descriptor_stats_from_sums(sums, 5, RCUT)
    np.testing.assert_allclose(davg[:, 0::4], 0.7, rtol=1e-14)
    np.testing.assert_array_equal(davg[:, 1::4], 0.0)
    np.testing.assert_array_equal(dstd, 0.01)


def test_set_davg_zero_zeroes_avg_and_keeps_std():
    batch, _ = frames_batch(5, "orthorhombic", 1, natoms=20)
    davg, dstd = se_a_stats([batch], 2, [10, 20], RCUT, RCUT_SMTH)
    zavg, zstd = se_a_stats([batch], 2, [10, 20], RCUT, RCUT_SMTH, set_davg_zero=True)
    assert np.any(davg != 0)
    np.testing.assert_array_equal(zavg, 0.0)
    np.testing.assert_array_equal(zstd, dstd)


# --------------------------------------------------------------------------------------------
# Energy bias and fparam/aparam statistics


def energy_batches(counts, per_type, nbatch, bs, rng, noise=0.0):
    """Per system, `nbatch` batches of `bs` frames with energy = counts . per_type (+ noise)."""
    out = []
    for c in counts:
        natoms = int(sum(c))
        vec = np.array([natoms, natoms, *c], dtype=np.int32)
        out.append([{"energy": np.dot(c, per_type) + noise * rng.normal(size=bs),
                     "natoms_vec": vec} for _ in range(nbatch)])
    return out


def test_energy_bias_recovers_per_type_energies_of_linear_data():
    per_type = np.array([-3.5, -1.25, -7.0])
    counts = [[2, 4, 0], [1, 1, 1], [0, 3, 2], [5, 0, 1]]
    stat = energy_batches(counts, per_type, 3, 2, np.random.default_rng(0))
    np.testing.assert_allclose(compute_energy_bias(stat, 3), per_type, rtol=1e-10)


def test_the_bias_is_the_least_squares_fit_over_every_stat_frame():
    """Three systems of two types, with 12, 3 and 12 stat frames: each frame is a row (not each
    system's mean), and the standard deviation is that of the frames' residual energies."""
    rng = np.random.default_rng(1)
    compositions = [[1.0, 2.0], [3.0, 1.0], [2.0, 2.0]]
    stat = energy_batches(compositions, np.array([1.0, 2.0]), 4, 3, rng, noise=0.5)
    stat[1] = stat[1][:1]
    energies = np.concatenate([b["energy"] for s in stat for b in s])
    counts = np.repeat(compositions, [12, 3, 12], axis=0)
    expected = np.linalg.lstsq(counts, energies, rcond=None)[0]
    bias, std = energy_bias_and_std(stat, 2)
    np.testing.assert_allclose(bias, expected, rtol=1e-10)
    np.testing.assert_allclose(std, np.std(energies - counts @ expected), rtol=1e-10)
    means = [np.mean(np.concatenate([b["energy"] for b in s])) for s in stat]
    by_means = np.linalg.lstsq(np.array(compositions), means, rcond=None)[0]
    assert not np.allclose(bias, by_means, rtol=1e-6)


def test_identical_compositions_give_the_minimum_norm_bias():
    counts = np.array([[64.0, 128.0], [64.0, 128.0]])
    ener = np.array([-100.0, -102.0])
    bias = energy_bias_lstsq(ener, counts)
    n = counts[0]
    np.testing.assert_allclose(bias, ener.mean() * n / np.dot(n, n), rtol=1e-12)


def test_atom_ener_fixes_the_bias_of_given_types():
    counts = np.array([[2.0, 4.0, 1.0], [1.0, 1.0, 3.0], [3.0, 2.0, 2.0]])
    ener = np.array([-10.0, -7.0, -12.0])
    bias = energy_bias_lstsq(ener, counts, atom_ener=[None, -0.5])
    assert bias[1] == -0.5
    rest = np.linalg.lstsq(counts[:, [0, 2]], ener - counts[:, 1] * -0.5, rcond=None)[0]
    np.testing.assert_allclose(bias[[0, 2]], rest, rtol=1e-12)
    with pytest.raises(ValueError, match="type 3"):
        energy_bias_lstsq(ener, counts, atom_ener=[None, None, None, 1.0])


def test_fparam_and_aparam_stats_are_mean_and_floored_inverse_std():
    rng = np.random.default_rng(2)
    stat = [[{"fparam": rng.normal(2, 3, (4, 2)) * [1, 0], "aparam": rng.normal(-1, 2, (4, 5 * 3))}
             for _ in range(2)] for _ in range(3)]
    fp = np.concatenate([b["fparam"] for s in stat for b in s])
    ap = np.concatenate([b["aparam"].reshape(-1, 3) for s in stat for b in s])
    avg, istd = compute_fparam_stats(stat, 2, protection=1e-2)
    np.testing.assert_allclose(avg, fp.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(istd, 1 / np.maximum(fp.std(axis=0), 1e-2), rtol=1e-12)
    assert istd[1] == 100.0       # a constant parameter: std floored at data_stat_protect
    avg, istd = compute_aparam_stats(stat, 3, protection=1e-2)
    np.testing.assert_allclose(avg, ap.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(istd, 1 / ap.std(axis=0), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# The statistics batches


def write_numbered_system(path, natoms, nframes, seed):
    rng = np.random.default_rng(seed)
    (path / "set.000").mkdir(parents=True)
    (path / "type.raw").write_text(" ".join(["0"] * (natoms - 1) + ["1"]))
    coord = rng.uniform(0, 10, (nframes, natoms * 3))
    np.save(path / "set.000/coord.npy", coord)
    np.save(path / "set.000/box.npy", np.tile(10 * np.eye(3).reshape(9), (nframes, 1)))
    np.save(path / "set.000/energy.npy", np.arange(nframes, dtype=float))


def test_stat_batches_come_system_by_system_without_system_draws(tmp_path):
    sizes = [(3, 6), (4, 5)]     # (natoms, frames)
    for k, (natoms, nframes) in enumerate(sizes):
        write_numbered_system(tmp_path / f"s{k}", natoms, nframes, k)
    data = DataSystem([tmp_path / "s0", tmp_path / "s1"], 2, seed=9, labels=["energy"])
    stat = collect_stat_batches(data, 2)
    assert [len(s) for s in stat] == [2, 2]
    for (natoms, _), system in zip(sizes, stat):
        assert all(b["natoms_vec"][0] == natoms for b in system)
    # the only random draws: one shuffle of each system's frames (4 frames used of 6 and 5)
    rng = np.random.RandomState([0, 9])  # the data RNG's key: [rank, seed]
    orders = []
    for _, nframes in sizes:
        order = np.arange(nframes)
        rng.shuffle(order)
        orders.append(order)
    for order, system in zip(orders, stat):
        np.testing.assert_array_equal(np.concatenate([b["energy"] for b in system]), order[:4])
    assert data.rng.randint(1 << 30) == rng.randint(1 << 30)


@needs_water
def test_water_bias_is_the_minimum_norm_solution_for_equal_compositions():
    data = DataSystem([WATER / f"data_{k}" for k in range(3)], "auto", ["O", "H"], seed=1,
                      labels=["energy"])
    stat = collect_stat_batches(data, 10)
    bias = compute_energy_bias(stat, 2)
    n = stat[0][0]["natoms_vec"][2:].astype(float)
    mean = np.mean(np.concatenate([b["energy"] for s in stat for b in s]))
    np.testing.assert_allclose(bias, mean * n / np.dot(n, n), rtol=1e-10)


@needs_water
@pytest.mark.parametrize("set_davg_zero", [False, True])
def test_model_statistics_apply_set_davg_zero_and_atom_ener_once(set_davg_zero):
    from deepmd_tebd.config import build_config, normalize
    from deepmd_tebd.data.stats import compute_model_statistics
    from deepmd_tebd.model import EnergyModel

    script = {"model": {"type_map": ["O", "H"],
                        "descriptor": {"type": "se_e2_a", "sel": [46, 92],
                                       "set_davg_zero": set_davg_zero},
                        "fitting_net": {"atom_ener": [-90.0, None]}},
              "learning_rate": {"type": "exp"},
              "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}
    settings = build_config(normalize(script, "stats.json")).model
    data = DataSystem([WATER / f"data_{k}" for k in range(2)], 1, ["O", "H"], seed=2,
                      labels=["energy"])
    stat = collect_stat_batches(data, 2)
    stats = compute_model_statistics(stat, settings, EnergyModel(settings).descriptor.stat_env_mat)
    davg, dstd = se_a_stats(stat, 2, [46, 92], 6.0, 0.5)
    np.testing.assert_array_equal(stats.davg, np.zeros_like(davg) if set_davg_zero else davg)
    np.testing.assert_array_equal(stats.dstd, dstd)
    assert davg.any()
    assert stats.bias_atom_e[0] == -90.0
    np.testing.assert_array_equal(stats.bias_atom_e,
                                  compute_energy_bias(stat, 2, None, [-90.0, None]))
    assert stats.fparam_avg is None and stats.aparam_avg is None


# --------------------------------------------------------------------------------------------
# DeePMD-kit 3.2 on the same frames

DEEPMD_STATS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from deepmd.tf.descriptor.se_a import DescrptSeA
    from deepmd.tf.fit.stat import make_aparam_stats, make_fparam_stats, stats_avg_std
    from deepmd.dpmodel.utils.stat import compute_output_stats

    args = json.loads(sys.argv[1])
    out = {}
    with np.load(args["input"]) as data:
        nb = int(data["nbatch"])
        keys = ("coord", "box", "type", "natoms_vec", "default_mesh")
        lists = {k: [data[f"{i}/{k}"] for i in range(nb)] for k in keys}
        descrpt = DescrptSeA(rcut=args["rcut"], rcut_smth=args["rcut_smth"], sel=args["sel"],
                             neuron=[4], axis_neuron=2)
        descrpt.compute_input_stats(lists["coord"], lists["box"], lists["type"],
                                    lists["natoms_vec"], lists["default_mesh"], {})
        out["davg"], out["dstd"] = descrpt.davg, descrpt.dstd
        sampled = []  # as deepmd/tf/model/ener.py packs its statistics batches, per system
        for k in range(int(data["nsys"])):
            energy = data[f"sys{k}/energy"].reshape(-1, 1)
            natoms = np.tile(data[f"sys{k}/natoms_vec"], (energy.shape[0], 1))
            sampled.append({"energy": energy, "find_energy": np.bool_(True), "natoms": natoms,
                            "atype": np.zeros((energy.shape[0], 1), dtype=int)})
        for name, assigned in args["bias_cases"].items():
            preset = None if assigned is None else {"energy": [
                None if v is None else np.array([v]) for v in assigned]}
            bias, std = compute_output_stats(sampled, 2, keys=["energy"],
                                             rcond=args["rcond"][name], preset_bias=preset)
            out["bias/" + name] = bias["energy"].ravel()
            out["std/" + name] = std["energy"].ravel()
        all_stat = {"fparam": [data["fparam"]], "aparam": [data["aparam"]]}
        out["fparam_avg"], out["fparam_std"] = stats_avg_std(
            make_fparam_stats(all_stat, data["fparam"].shape[1]), args["protection"])
        out["aparam_avg"], out["aparam_std"] = stats_avg_std(
            make_aparam_stats(all_stat, args["numb_aparam"]), args["protection"])
    np.savez(args["output"], **out)
""")

BIAS_CASES = {"plain": None, "rcond": None, "atom_ener_O": [-90.0, None],
              "atom_ener_H": [None, -180.0]}
RCOND = {"plain": None, "rcond": 1e-3, "atom_ener_O": None, "atom_ener_H": None}


@pytest.fixture(scope="module")
def deepmd_water_stats(tmp_path_factory):
    """Our statistics inputs and DeePMD-kit's results on every frame of data_0..2."""
    if not (WATER / "data_0/type.raw").is_file():
        pytest.skip(f"the water data is not at {WATER}")
    require_oracle()  # skip before the work when there is no oracle
    tmp = tmp_path_factory.mktemp("deepmd_stats")
    # batch size 80 = one whole set per batch: every frame of each system, whatever the RNG
    data = DataSystem([WATER / f"data_{k}" for k in range(3)], 80, ["O", "H"], seed=3,
                      labels=["energy"])
    stat = [[data.get_batch(sys_idx=k) for _ in range(len(data.systems[k].sets))]
            for k in range(3)]
    flat = [b for s in stat for b in s]
    rng = np.random.default_rng(0)
    params = {"fparam": rng.normal(1.0, 2.0, (40, 3)) * [1, 1, 0],
              "aparam": rng.normal(-2.0, 0.5, (40, 10 * 2))}
    arrays = {f"{i}/{k}": b[k] for i, b in enumerate(flat)
              for k in ("coord", "box", "type", "natoms_vec", "default_mesh")}
    arrays.update({f"sys{k}/energy": np.concatenate([b["energy"] for b in s])
                   for k, s in enumerate(stat)})
    arrays.update({f"sys{k}/natoms_vec": s[0]["natoms_vec"] for k, s in enumerate(stat)})
    np.savez(tmp / "in.npz", nbatch=len(flat), nsys=len(stat), **params, **arrays)
    args = {"input": str(tmp / "in.npz"), "output": str(tmp / "out.npz"), "rcut": RCUT,
            "rcut_smth": RCUT_SMTH, "sel": [46, 92], "bias_cases": BIAS_CASES, "rcond": RCOND,
            "protection": 1e-2, "numb_aparam": 2}
    run_oracle_script(DEEPMD_STATS, args, tmp, timeout=900)
    with np.load(tmp / "out.npz") as out:
        theirs = {k: out[k] for k in out.files}
    return {"stat": stat, "flat": flat, 
            "params": params, "theirs": theirs}


@pytest.mark.slow
def test_descriptor_stats_match_deepmd_kit_on_water(deepmd_water_stats):
    davg, dstd = se_a_stats(deepmd_water_stats["flat"], 2, [46, 92], RCUT, RCUT_SMTH)
    theirs = deepmd_water_stats["theirs"]
    np.testing.assert_allclose(davg, theirs["davg"], rtol=1e-10, atol=0)
    np.testing.assert_allclose(dstd, theirs["dstd"], rtol=1e-10, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BIAS_CASES))
def test_energy_bias_matches_deepmd_kit_on_water(deepmd_water_stats, case):
    """Systems of 80, 160 and 80 frames: a fit over every frame, not over the systems' means."""
    bias, std = energy_bias_and_std(deepmd_water_stats["stat"], 2, rcond=RCOND[case],
                                    atom_ener=BIAS_CASES[case])
    theirs = deepmd_water_stats["theirs"]
    np.testing.assert_allclose(bias, theirs[f"bias/{case}"], rtol=1e-10)
    np.testing.assert_allclose(std, theirs[f"std/{case}"], rtol=1e-10)


@pytest.mark.slow
def test_fparam_aparam_stats_match_deepmd_kit(deepmd_water_stats):
    params, theirs = deepmd_water_stats["params"], deepmd_water_stats["theirs"]
    stat = [[{"fparam": params["fparam"][:25], "aparam": params["aparam"][:25]}],
            [{"fparam": params["fparam"][25:], "aparam": params["aparam"][25:]}]]
    avg, istd = compute_fparam_stats(stat, 3, protection=1e-2)
    np.testing.assert_allclose(avg, theirs["fparam_avg"], rtol=1e-10)
    np.testing.assert_allclose(istd, 1 / theirs["fparam_std"], rtol=1e-10)
    avg, istd = compute_aparam_stats(stat, 2, protection=1e-2)
    np.testing.assert_allclose(avg, theirs["aparam_avg"], rtol=1e-10)
    np.testing.assert_allclose(istd, 1 / theirs["aparam_std"], rtol=1e-10)
