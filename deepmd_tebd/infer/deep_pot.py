"""`DeepPot`: energies, forces and virials from a frozen energy model (ours or DeePMD-kit's).

    dp = DeepPot("frozen_model.pb")
    e, f, v = dp.eval(coords, cells, atom_types)            # [nf, 1], [nf, nat, 3], [nf, 9]
    e, f, v, ae, av = dp.eval(coords, cells, atom_types, atomic=True)
                                                            # + [nf, nat, 1], [nf, nat, 9]

coords [nf, nat, 3] or [nf, nat*3] (Angstrom), cells [nf, 3, 3] or [nf, 9] (rows are the cell
vectors) or None for open boundaries, atom_types [nat] (indices into `get_type_map()`, the same
for every frame), fparam [nf, dim_fparam] (or [dim_fparam] for all frames), aparam
[nf, nat, dim_aparam] (or [nat, dim_aparam]). Atoms need not be sorted: they are sorted by type
for the graph and the results mapped back.

A model whose descriptor takes every frame's own types (se_atten, se_atten_v2: the graph's
environment matrix is ProdEnvMatAMix; `mixed_types` is True) also takes atom_types [nf, nat],
different in each frame and with -1 for virtual atoms (no energy, no force), as DeePMD-kit's
`eval(..., mixed_type=True)`; those frames are fed as they are, unsorted.

Frames are evaluated in batches of at most `batch_atoms` atoms (frames x atoms per frame; at
least one frame), from the environment variable DP_INFER_BATCH_SIZE or 1024, so that memory
stays bounded however many frames one call brings. A single frame is evaluated whole.

On the CPU, a graph that carries its training script (ours, DeePMD-kit's since 2.1.5) and is not
compressed is evaluated by its model rebuilt on the training step's kernels (kernel_model.py),
once the first frames have shown it equal to the graph (1e-10 relative); `kernels=False` keeps
the graph's own ops throughout.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..op import op_module  # noqa: F401  (registers the custom ops the graph uses)
from ..threads import apply_thread_settings, pool_cpu_memory, thread_counts
from . import node_names as nn
from .graph_file import ModelFileError, check_version, read_graph_def
from .kernel_model import KEYS, KernelModel, agrees
from .weight_names import graph_constants

log = logging.getLogger("deepmd_tebd")

DEFAULT_BATCH_ATOMS = 1024


def _session_config() -> tf.compat.v1.ConfigProto:
    intra, inter = thread_counts()
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)


class DeepPot:
    """A frozen energy model (`.pb`) ready to evaluate; see the module docstring."""

    def __init__(self, model_file: str | os.PathLike, batch_atoms: int | None = None,
                 kernels: bool = True):
        pool_cpu_memory()  # before TensorFlow's first op creates its CPU allocator
        try:  # the kernel model runs in TensorFlow's own thread pools: DP_*_THREADS size them
            apply_thread_settings()
        except RuntimeError:  # the runtime started before this (the caller's TensorFlow work)
            log.debug("DeepPot: TensorFlow's thread pools were set before; kept")
        self.model_file = Path(model_file)
        graph_def = read_graph_def(self.model_file)
        self.graph = tf.Graph()
        try:
            with self.graph.as_default():
                tf.graph_util.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as err:
            raise ModelFileError(f"{self.model_file}: the graph cannot be loaded: {err}") from None
        self.session = tf.compat.v1.Session(graph=self.graph, config=_session_config())
        names = {op.name for op in self.graph.get_operations()}

        def constant(name):
            return self.session.run(self.graph.get_tensor_by_name(name + ":0"))

        model_type = constant(nn.MODEL_ATTR_MODEL_TYPE).decode()
        if model_type != nn.ENERGY_MODEL:
            raise ModelFileError(f"{self.model_file}: a {model_type!r} model, not an energy "
                                 f"model ({nn.ENERGY_MODEL!r})")
        version = (constant(nn.MODEL_ATTR_MODEL_VERSION).decode()
                   if nn.MODEL_ATTR_MODEL_VERSION in names else "0.0")
        check_version(self.model_file, version)
        self.model_version = version
        self.type_map = constant(nn.MODEL_ATTR_TMAP).decode().split()
        self.ntypes = int(constant(nn.DESCRPT_ATTR_NTYPES))
        self.rcut = float(constant(nn.DESCRPT_ATTR_RCUT))
        self.dim_fparam = max(0, int(constant(nn.FITTING_ATTR_DFPARAM))) if (
            nn.FITTING_ATTR_DFPARAM in names) else 0
        self.dim_aparam = max(0, int(constant(nn.FITTING_ATTR_DAPARAM))) if (
            nn.FITTING_ATTR_DAPARAM in names) else 0
        # an empty type map: trained without model/type_map (DeePMD-kit writes "" then)
        if self.type_map and len(self.type_map) != self.ntypes:
            raise ModelFileError(f"{self.model_file}: its type map {self.type_map} does not "
                                 f"name its {self.ntypes} types")
        self._in = {name: self.graph.get_tensor_by_name(name + ":0")
                    for name in nn.INPUTS + (nn.T_FPARAM, nn.T_APARAM) if name in names}
        if self.dim_fparam and nn.T_FPARAM not in self._in:
            raise ModelFileError(f"{self.model_file}: dfparam is {self.dim_fparam}, but the "
                                 f"graph has no {nn.T_FPARAM} input")
        if self.dim_aparam and nn.T_APARAM not in self._in:
            raise ModelFileError(f"{self.model_file}: daparam is {self.dim_aparam}, but the "
                                 f"graph has no {nn.T_APARAM} input")
        # the graph takes each frame's own types (DeePMD-kit's mixed_type evaluation)
        self.mixed_types = any(op.type == "ProdEnvMatAMix" for op in self.graph.get_operations())
        self._out = {key: self.graph.get_tensor_by_name(nn.OUTPUT_NODES[key] + ":0")
                     for key in ("energy", "force", "virial", "atom_energy", "atom_virial")}
        if batch_atoms is None:
            batch_atoms = int(os.environ.get("DP_INFER_BATCH_SIZE") or DEFAULT_BATCH_ATOMS)
        if batch_atoms < 1:
            raise ValueError(f"batch_atoms must be positive, got {batch_atoms}")
        self.batch_atoms = batch_atoms
        # the model on the training step's kernels; `_checked` once it equalled the graph
        self._kernel_model = (KernelModel.of_graph(self.model_file, graph_constants(graph_def))
                              if kernels and not tf.config.list_logical_devices("GPU")
                              else None)
        self._checked = False

    # -- attributes ------------------------------------------------------------------------

    def get_type_map(self) -> list[str]:
        """The element name of each type index; empty for a model trained without a type map."""
        return list(self.type_map)

    def get_ntypes(self) -> int:
        """The number of atom types of the model."""
        return self.ntypes

    def get_rcut(self) -> float:
        """The cutoff radius (Angstrom)."""
        return self.rcut

    def get_dim_fparam(self) -> int:
        """Frame parameters per frame (0: none)."""
        return self.dim_fparam

    def get_dim_aparam(self) -> int:
        """Atomic parameters per atom (0: none)."""
        return self.dim_aparam

    def close(self) -> None:
        """Releases the TensorFlow session."""
        self.session.close()

    # -- evaluation ------------------------------------------------------------------------

    def _atom_types(self, atom_types) -> np.ndarray:
        """[nat] types of every frame, or [nf, nat] per-frame types (a mixed-types graph)."""
        atom_types = np.asarray(atom_types)
        if atom_types.ndim == 2 and np.all(atom_types == atom_types[:1]) and np.all(
                atom_types >= 0):
            atom_types = atom_types[0]  # the same types in every frame
        if atom_types.ndim not in (1, 2) or not np.issubdtype(atom_types.dtype, np.integer):
            raise ValueError(f"atom_types must be one integer type per atom, shape [natoms] "
                             f"(or [nframes, natoms] for a model of mixed types); got shape "
                             f"{atom_types.shape} of {atom_types.dtype}")
        per_frame = atom_types.ndim == 2 or np.any(atom_types == -1)
        if per_frame and not self.mixed_types:
            raise ValueError("atom_types differ between frames or hold -1 (virtual atoms): only "
                             "a model whose descriptor takes every frame's own types "
                             f"(se_atten, se_atten_v2) evaluates them, not {self.model_file}")
        bad = (atom_types < (-1 if per_frame else 0)) | (atom_types >= self.ntypes)
        if np.any(bad):
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"atom_types: type {int(atom_types[bad][0])} (atom {where[-1]}"
                             f"{f' of frame {where[0]}' if len(where) == 2 else ''}) is outside "
                             f"the model's type map {self.type_map} (0..{self.ntypes - 1}"
                             f"{', or -1 for a virtual atom' if per_frame else ''})")
        return atom_types.reshape(-1, atom_types.shape[-1]) if per_frame else atom_types

    def _inputs(self, coords, cells, atom_types, fparam, aparam):
        atom_types = self._atom_types(atom_types)
        nat = atom_types.shape[-1]
        coords = np.asarray(coords, dtype=np.float64)
        if coords.size % (nat * 3) != 0 or coords.size == 0 or (
                coords.shape[-1] not in (3, nat * 3)):
            raise ValueError(f"coords must have shape [nframes, {nat}, 3] or [nframes, "
                             f"{nat * 3}] for {nat} atoms; got {coords.shape}")
        coords = coords.reshape(-1, nat, 3)
        nf = coords.shape[0]
        if atom_types.ndim == 2 and atom_types.shape[0] != nf:
            raise ValueError(f"atom_types gives the types of {atom_types.shape[0]} frames for "
                             f"{nf} frames of coords")
        if cells is not None:
            cells = np.asarray(cells, dtype=np.float64)
            if cells.size != nf * 9:
                raise ValueError(f"cells must have shape [{nf}, 9] or [{nf}, 3, 3] for {nf} "
                                 f"frames (or be None for open boundaries); got {cells.shape}")
            cells = cells.reshape(nf, 9)
        if self.dim_fparam:
            if fparam is None:
                raise ValueError(f"the model needs fparam ({self.dim_fparam} per frame)")
            fparam = np.asarray(fparam, dtype=np.float64)
            if fparam.size == self.dim_fparam:
                fparam = np.tile(fparam.reshape(1, -1), (nf, 1))
            if fparam.size != nf * self.dim_fparam:
                raise ValueError(f"fparam must have shape [{nf}, {self.dim_fparam}] or "
                                 f"[{self.dim_fparam}]; got {fparam.shape}")
            fparam = fparam.reshape(nf, self.dim_fparam)
        if self.dim_aparam:
            if aparam is None:
                raise ValueError(f"the model needs aparam ({self.dim_aparam} per atom)")
            aparam = np.asarray(aparam, dtype=np.float64)
            if aparam.size == nat * self.dim_aparam:
                aparam = np.tile(aparam.reshape(1, -1), (nf, 1))
            if aparam.size != nf * nat * self.dim_aparam:
                raise ValueError(f"aparam must have shape [{nf}, {nat}, {self.dim_aparam}] or "
                                 f"[{nat}, {self.dim_aparam}]; got {aparam.shape}")
            aparam = aparam.reshape(nf, nat, self.dim_aparam)
        return coords, cells, atom_types, fparam, aparam

    def _run(self, inputs: dict) -> dict:
        """{output key: array} of every KEYS output for {graph input name: array}: the kernel
        model once checked, the graph's session otherwise."""
        if self._kernel_model is not None and self._checked:
            return self._kernel_model(inputs)
        feed = {self._in[name]: value for name, value in inputs.items()}
        values = self.session.run({key: self._out[key] for key in KEYS}, feed_dict=feed)
        if self._kernel_model is not None:  # the first frames: both, compared
            try:
                self._checked = agrees(self._kernel_model(inputs), values)
                reason = "differs from the graph"
            except (tf.errors.OpError, ValueError) as err:
                reason = f"fails on these frames ({type(err).__name__}: {err})"
            if not self._checked:
                log.warning(f"{self.model_file}: the model rebuilt from its training script "
                            f"{reason}; the graph's own ops evaluate it")
                self._kernel_model = None
        return values

    @property
    def on_kernels(self) -> bool:
        """Whether the evaluation runs on the training step's kernels (kernel_model.py)."""
        return self._kernel_model is not None and self._checked

    def eval(self, coords, cells, atom_types, atomic: bool = False, fparam=None, aparam=None,
             mixed_type: bool = False):
        """(energy [nf, 1], force [nf, nat, 3], virial [nf, 9]) and with `atomic` also
        (atom_energy [nf, nat, 1], atom_virial [nf, nat, 9]); see the module docstring.
        mixed_type (DeePMD-kit's keyword) is accepted: per-frame types are recognised by their
        shape."""
        coords, cells, atom_types, fparam, aparam = self._inputs(coords, cells, atom_types,
                                                                 fparam, aparam)
        nf, nat = coords.shape[:2]
        if atom_types.ndim == 2:  # per frame, fed unsorted; natoms from frame 0, virtual atoms
            order = np.arange(nat)  # counted as type 0 (DeePMD-kit's DeepEval)
            first = atom_types[0]
            counts = np.bincount(first[first >= 0], minlength=self.ntypes)
            counts[0] += int(np.sum(first < 0))
            fed_types = atom_types
        else:
            order = np.argsort(atom_types, kind="stable")  # sorted position -> original atom
            counts = np.bincount(atom_types, minlength=self.ntypes)
            fed_types = np.broadcast_to(atom_types[order], (nf, nat))
        natoms = np.concatenate([[nat, nat], counts])
        per_run = max(1, self.batch_atoms // nat)
        keys = ["energy", "force", "virial"] + (["atom_energy", "atom_virial"] if atomic else [])
        parts = {key: [] for key in keys}
        for start in range(0, nf, per_run):
            stop = min(nf, start + per_run)
            k = stop - start
            inputs = {nn.T_COORD: coords[start:stop, order].reshape(-1),
                      nn.T_TYPE: fed_types[start:stop].reshape(-1).astype(np.int32),
                      nn.T_NATOMS: natoms.astype(np.int32)}
            if cells is None:
                inputs[nn.T_BOX] = np.tile(np.eye(3).reshape(-1), k)
                inputs[nn.T_MESH] = np.zeros(0, np.int32)
            else:
                inputs[nn.T_BOX] = cells[start:stop].reshape(-1)
                inputs[nn.T_MESH] = np.zeros(6, np.int32)
            if self.dim_fparam:
                inputs[nn.T_FPARAM] = fparam[start:stop].reshape(-1)
            if self.dim_aparam:
                inputs[nn.T_APARAM] = aparam[start:stop, order].reshape(-1)
            values = self._run(inputs)
            for key in keys:
                parts[key].append(values[key])
        out = {key: np.concatenate(value, axis=0) for key, value in parts.items()}
        back = np.empty_like(order)
        back[order] = np.arange(nat)  # original atom -> sorted position
        result = [out["energy"].reshape(nf, 1),
                  out["force"].reshape(nf, nat, 3)[:, back],
                  out["virial"].reshape(nf, 9)]
        if atomic:
            result += [out["atom_energy"].reshape(nf, nat, 1)[:, back],
                       out["atom_virial"].reshape(nf, nat, 9)[:, back]]
        return tuple(result)
