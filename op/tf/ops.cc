// Op registrations: DeePMD-kit's op names, input names, dtypes, attributes and outputs, with
// shape functions. These names are an interface with DeePMD-kit's C++ runtime and LAMMPS:
// never rename them.
#include <numeric>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

using tensorflow::Status;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// nloc from a constant natoms input, or unknown.
DimensionHandle nloc_dim(InferenceContext* c, int natoms_input) {
  const tensorflow::Tensor* natoms = c->input_tensor(natoms_input);
  if (natoms == nullptr || natoms->NumElements() < 1) return c->UnknownDim();
  return c->MakeDim(natoms->flat<int>()(0));
}

// nall from a constant natoms input, or unknown.
DimensionHandle nall_dim(InferenceContext* c, int natoms_input) {
  const tensorflow::Tensor* natoms = c->input_tensor(natoms_input);
  if (natoms == nullptr || natoms->NumElements() < 2) return c->UnknownDim();
  return c->MakeDim(natoms->flat<int>()(1));
}

// [nframes, nloc * per_atom]
Status per_atom_output(InferenceContext* c, DimensionHandle nframes, DimensionHandle nloc,
                       int64_t per_atom, ShapeHandle* out) {
  DimensionHandle width;
  TF_RETURN_IF_ERROR(c->Multiply(nloc, per_atom, &width));
  *out = c->Matrix(nframes, width);
  return Status();
}

// Ranks of the inputs shared by the neighbour-search ops (coord, type, natoms, box, mesh) and
// their common frame count; box must be [nframes, 9]. Unknown dimensions stay unknown.
Status search_inputs_shape(InferenceContext* c, DimensionHandle* nframes, ShapeHandle* natoms) {
  ShapeHandle coord, type, box, mesh;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &coord));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &type));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, natoms));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &box));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &mesh));
  *nframes = c->Dim(coord, 0);
  TF_RETURN_IF_ERROR(c->Merge(*nframes, c->Dim(type, 0), nframes));
  TF_RETURN_IF_ERROR(c->Merge(*nframes, c->Dim(box, 0), nframes));
  DimensionHandle nine;
  return c->WithValue(c->Dim(box, 1), 9, &nine);
}

// ProdEnvMatA: descrpt, descrpt_deriv, rij, nlist of [nframes, nloc * (4, 12, 3, 1) * nnei].
// davg and dstd are [ntypes, 4 * nnei] with nnei = sum(sel_a), and agree with each other.
Status prod_env_mat_a_shape(InferenceContext* c) {
  DimensionHandle nframes;
  ShapeHandle natoms, davg, dstd;
  TF_RETURN_IF_ERROR(search_inputs_shape(c, &nframes, &natoms));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 2, &davg));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 2, &dstd));
  std::vector<int> sel_a;
  TF_RETURN_IF_ERROR(c->GetAttr("sel_a", &sel_a));
  const int64_t nnei = std::accumulate(sel_a.begin(), sel_a.end(), int64_t(0));
  TF_RETURN_IF_ERROR(c->Merge(davg, dstd, &davg));
  DimensionHandle ndescrpt;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(davg, 1), nnei * 4, &ndescrpt));
  DimensionHandle nloc = nloc_dim(c, 2);
  ShapeHandle out;
  TF_RETURN_IF_ERROR(per_atom_output(c, nframes, nloc, nnei * 4, &out));
  c->set_output(0, out);
  TF_RETURN_IF_ERROR(per_atom_output(c, nframes, nloc, nnei * 12, &out));
  c->set_output(1, out);
  TF_RETURN_IF_ERROR(per_atom_output(c, nframes, nloc, nnei * 3, &out));
  c->set_output(2, out);
  TF_RETURN_IF_ERROR(per_atom_output(c, nframes, nloc, nnei, &out));
  c->set_output(3, out);
  return Status();
}

// ProdEnvMatAMix: ProdEnvMatA's four outputs, then ntype and nmask of [nframes, nloc * nnei].
Status prod_env_mat_a_mix_shape(InferenceContext* c) {
  TF_RETURN_IF_ERROR(prod_env_mat_a_shape(c));
  c->set_output(4, c->output(3));
  c->set_output(5, c->output(3));
  return Status();
}

// ProdForceSeA: [nframes, 3 * nall]
Status prod_force_shape(InferenceContext* c) {
  ShapeHandle net_deriv;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &net_deriv));
  DimensionHandle width;
  TF_RETURN_IF_ERROR(c->Multiply(nall_dim(c, 3), 3, &width));
  c->set_output(0, c->Matrix(c->Dim(net_deriv, 0), width));
  return Status();
}

// ProdVirialSeA: [nframes, 9], [nframes, 9 * nall]
Status prod_virial_shape(InferenceContext* c) {
  ShapeHandle net_deriv;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &net_deriv));
  DimensionHandle nframes = c->Dim(net_deriv, 0);
  c->set_output(0, c->Matrix(nframes, 9));
  DimensionHandle width;
  TF_RETURN_IF_ERROR(c->Multiply(nall_dim(c, 4), 9, &width));
  c->set_output(1, c->Matrix(nframes, width));
  return Status();
}

// The gradient ops return a tensor shaped like net_deriv (input 1).
Status like_net_deriv_shape(InferenceContext* c) {
  c->set_output(0, c->input(1));
  return Status();
}

}  // namespace

// The inputs shared by the neighbour-search ops (ProdEnvMatA, TebdNeighborStat), in the order of
// DeePMD-kit's ProdEnvMatA (source/op/prod_env_mat_multi_device.cc, REGISTER_OP).
#define DTK_SEARCH_INPUTS         \
  .Input("coord: T")              \
  .Input("type: int32")           \
  .Input("natoms: int32")         \
  .Input("box: T")                \
  .Input("mesh: int32")

// ProdEnvMatA's and ProdEnvMatAMix's inputs, attributes and first four outputs, as in
// DeePMD-kit's source/op/tf/prod_env_mat_multi_device.cc (REGISTER_OP).
#define DTK_ENV_MAT_SIGNATURE                \
  .Attr("T: {float, double} = DT_DOUBLE")    \
  DTK_SEARCH_INPUTS                          \
  .Input("davg: T")                          \
  .Input("dstd: T")                          \
  .Attr("rcut_a: float")                     \
  .Attr("rcut_r: float")                     \
  .Attr("rcut_r_smth: float")                \
  .Attr("sel_a: list(int)")                  \
  .Attr("sel_r: list(int)")                  \
  .Output("descrpt: T")                      \
  .Output("descrpt_deriv: T")                \
  .Output("rij: T")                          \
  .Output("nlist: int32")

REGISTER_OP("ProdEnvMatA")
    DTK_ENV_MAT_SIGNATURE
    .SetShapeFn(prod_env_mat_a_shape)
    .Doc(R"doc(
Normalised se_e2_a environment matrix of every local atom (descrpt), its derivative with respect to
the centre coordinate (descrpt_deriv), relative neighbour positions (rij) and the neighbour list
(nlist, -1 for empty slots). mesh selects the neighbour search: length 0 open boundaries,
6 periodic box, 16 a caller's list by pointer, >16 a caller's list inside the tensor.
)doc");

REGISTER_OP("ProdEnvMatAMix")
    DTK_ENV_MAT_SIGNATURE
    .Output("ntype: int32")
    .Output("nmask: bool")
    .SetShapeFn(prod_env_mat_a_mix_shape)
    .Doc(R"doc(
ProdEnvMatA with one block of sel_a[0] slots for the neighbours of every type, ordered by distance
alone (atoms of negative type, virtual atoms, are no neighbours and have zero rows), davg and dstd
per centre type; ntype holds each slot's neighbour type (ntypes for an empty slot) and nmask
whether the slot holds a neighbour. mesh lengths 1 and 7 are the mixed-type forms of 0 and 6.
)doc");

// The inputs and attributes of DeePMD-kit's four product ops after the gradient ops' leading
// `grad` input, as in DeePMD-kit's source/op/prod_force_multi_device.cc and
// source/op/prod_virial_multi_device.cc (REGISTER_OP): net_deriv, in_deriv, [rij,] nlist, natoms;
// n_a_sel + n_r_sel is the number of neighbour slots per atom (checked by the kernels).
#define DTK_PRODUCT_INPUTS(RIJ)   \
  .Input("net_deriv: T")          \
  .Input("in_deriv: T")           \
  RIJ                             \
  .Input("nlist: int32")          \
  .Input("natoms: int32")         \
  .Attr("n_a_sel: int")           \
  .Attr("n_r_sel: int")

REGISTER_OP("ProdForceSeA")
    .Attr("T: {float, double} = DT_DOUBLE")
    DTK_PRODUCT_INPUTS()
    .Output("force: T")
    .SetShapeFn(prod_force_shape);

REGISTER_OP("ProdVirialSeA")
    .Attr("T: {float, double} = DT_DOUBLE")
    DTK_PRODUCT_INPUTS(.Input("rij: T"))
    .Output("virial: T")
    .Output("atom_virial: T")
    .SetShapeFn(prod_virial_shape);

REGISTER_OP("ProdForceSeAGrad")
    .Attr("T: {float, double} = DT_DOUBLE")
    .Input("grad: T")
    DTK_PRODUCT_INPUTS()
    .Output("grad_net: T")
    .SetShapeFn(like_net_deriv_shape);

REGISTER_OP("ProdVirialSeAGrad")
    .Attr("T: {float, double} = DT_DOUBLE")
    .Input("grad: T")
    DTK_PRODUCT_INPUTS(.Input("rij: T"))
    .Output("grad_net: T")
    .SetShapeFn(like_net_deriv_shape);

#undef DTK_PRODUCT_INPUTS

// Our own op (never in frozen graphs): neighbour statistics of training data.
namespace {

// max_nbor_size [nframes, ntypes], min_nbor_dist [nframes]; ntypes = len(natoms) - 2.
Status neighbor_stat_shape(InferenceContext* c) {
  DimensionHandle nframes;
  ShapeHandle natoms;
  TF_RETURN_IF_ERROR(search_inputs_shape(c, &nframes, &natoms));
  DimensionHandle ntypes = c->UnknownDim();
  if (c->ValueKnown(c->Dim(natoms, 0))) {
    const int64_t len = c->Value(c->Dim(natoms, 0));
    if (len < 3)
      return tensorflow::errors::InvalidArgument(
          "natoms must have length >= 3 (nloc, nall, one count per type), got ", len);
    ntypes = c->MakeDim(len - 2);
  }
  c->set_output(0, c->Matrix(nframes, ntypes));
  c->set_output(1, c->Vector(nframes));
  return Status();
}

}  // namespace

REGISTER_OP("TebdNeighborStat")
    .Attr("T: {float, double} = DT_DOUBLE")
    DTK_SEARCH_INPUTS
    .Attr("rcut: float")
    .Output("max_nbor_size: int32")
    .Output("min_nbor_dist: T")
    .SetShapeFn(neighbor_stat_shape)
    .Doc(R"doc(
Neighbour statistics of each frame: max_nbor_size[f, t] is the largest number of type-t neighbours
within rcut (distance < rcut, periodic images included) around any atom of frame f, and
min_nbor_dist[f] the shortest distance between two atoms within rcut (+inf if no pair is that
close). Atoms of negative type are skipped. mesh of length 0 means open boundaries, 6 a periodic
box. Two atoms at distance 0 are an InvalidArgument error naming the frame and the atoms.
)doc");

#undef DTK_SEARCH_INPUTS
