// Registrations of DeePMD-kit's tabulation ops of compressed se_e2_a models
// (source/op/tf/tabulate_multi_device.cc, REGISTER_OP): names, inputs, attributes and outputs
// exactly as there (TabulateFusionSeAGradGrad's T has no default there either), with shape
// functions.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

using tensorflow::Status;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// The inputs every tabulation op starts with: table [nspline, 6*M], table_info [6],
// em_x [nloc*nnei, 1], em [nloc, nnei, 4]. Returns em's shape.
Status table_inputs_shape(InferenceContext* c, ShapeHandle* em) {
  ShapeHandle table, info, em_x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &table));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &info));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &em_x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, em));
  DimensionHandle four;
  return c->WithValue(c->Dim(*em, 2), 4, &four);
}

// TabulateFusionSeA: descriptor [nloc, 4, last_layer_size].
Status fusion_shape(InferenceContext* c) {
  ShapeHandle em;
  TF_RETURN_IF_ERROR(table_inputs_shape(c, &em));
  int last_layer_size = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("last_layer_size", &last_layer_size));
  c->set_output(0, c->MakeShape({c->Dim(em, 0), c->MakeDim(4), c->MakeDim(last_layer_size)}));
  return Status();
}

// TabulateFusionSeAGrad: dy_dem_x shaped like em_x, dy_dem like em.
Status fusion_grad_shape(InferenceContext* c) {
  ShapeHandle em, dy;
  TF_RETURN_IF_ERROR(table_inputs_shape(c, &em));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 3, &dy));
  c->set_output(0, c->input(2));
  c->set_output(1, em);
  return Status();
}

// TabulateFusionSeAGradGrad: dz_dy shaped like the descriptor (input 6).
Status fusion_grad_grad_shape(InferenceContext* c) {
  ShapeHandle em, descriptor;
  TF_RETURN_IF_ERROR(table_inputs_shape(c, &em));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 3, &descriptor));
  c->set_output(0, descriptor);
  return Status();
}

}  // namespace

REGISTER_OP("TabulateFusionSeA")
    .Attr("T: {float, double} = DT_DOUBLE")
    .Input("table: T")
    .Input("table_info: T")
    .Input("em_x: T")
    .Input("em: T")
    .Attr("last_layer_size: int")
    .Output("descriptor: T")
    .SetShapeFn(fusion_shape);

REGISTER_OP("TabulateFusionSeAGrad")
    .Attr("T: {float, double} = DT_DOUBLE")
    .Input("table: T")
    .Input("table_info: T")
    .Input("em_x: T")
    .Input("em: T")
    .Input("dy: T")
    .Input("descriptor: T")
    .Output("dy_dem_x: T")
    .Output("dy_dem: T")
    .SetShapeFn(fusion_grad_shape);

REGISTER_OP("TabulateFusionSeAGradGrad")
    .Attr("T: {float, double}")
    .Input("table: T")
    .Input("table_info: T")
    .Input("em_x: T")
    .Input("em: T")
    .Input("dz_dy_dem_x: T")
    .Input("dz_dy_dem: T")
    .Input("descriptor: T")
    .Output("dz_dy: T")
    .Attr("is_sorted: bool = true")
    .SetShapeFn(fusion_grad_grad_shape);
