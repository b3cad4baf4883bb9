// TebdEmbeddingNet and TebdEmbeddingNetGrad: an embedding net whose rows vary in one scalar
// only, its derivative along that scalar, and the gradient of both, fused on the CPU.
//
// Row i of the net's input is [s_i, fixed_i]: the first pre-activation is
//   p_i = s_i * slope + table[index_i]        (slope: the first matrix's s row; table: the
//                                               fixed part times its rows, plus the bias)
// then h_1 = tanh(p), and each further layer l: y = tanh(h_{l-1} W_l + b_l) * dt_l (dt_l: the
// layer's timestep, resnet_dt; ones without) with the resnet rule (none: h_l = y; skip:
// h_l = h_{l-1} + y; concat: h_l = [h_{l-1}, h_{l-1}] + y).
// TebdEmbeddingNet gives g = h_L and its tangent dg = dh_L/ds, carried layer by layer (forward
// mode): the force then needs no pass back through the net. TebdEmbeddingNetGrad gives the
// gradient of <grad_g, g> + <grad_dg, dg> with respect to s, table, slope and every W_l, b_l,
// dt_l (reverse mode through the forward and tangent passes, recomputed block by block so that
// nothing of the size of the activations is stored between the two ops).
//
// The outputs are rows of the net picked by `source`: output row o is the net's row source[o],
// so that rows whose inputs are the same constant (the empty neighbour slots of the environment
// matrix, whose rows are -davg/dstd) are computed once, as one row that every copy names. A
// row that no output names is not computed and gets a zero gradient; a row named by several
// gets the sum of their gradients.
//
// A stack of K nets of the same widths (the per-type nets of a descriptor without type
// embedding) runs in one op: every weight tensor gains a leading net axis, and each row goes
// through the net that owns its table row. The rows are grouped by net (a stable counting sort)
// before they are cut into blocks, so that a block's products are one net's.
//
// The forward op keeps what the gradient needs of each block (the first layer's output, every
// later layer's tanh output and tangent pre-activation) as its `tape` output, so that the
// gradient op does not compute the forward pass again; above kTapeBytes the tape is empty and
// the gradient op recomputes the blocks (the same arithmetic, so the same numbers).
//
// Rows go in blocks of kBlock through dense products (dense_gemm.h; the h and tangent rows of a
// block stacked into one product per layer); the gradient cuts the blocks into kRanges
// contiguous ranges, each with its own weight-gradient sums, added in range order (the result
// depends neither on scheduling nor on the number of threads). The ops serve the training step only
// (deepmd_tebd/model/kernels.py); frozen graphs keep TensorFlow's own ops.
#define EIGEN_DONT_PARALLELIZE  // one block per thread: the rows are the parallel axis
#include <Eigen/Dense>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "dense_gemm.h"

namespace deepmd_tebd {
namespace {

using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

constexpr int64_t kBlock = 128;
// More ranges than threads: a thread that another op holds up leaves its share to the others.
constexpr int64_t kRanges = 16;
constexpr int64_t kTapeBytes = int64_t{1} << 29;  // the largest tape kept (512 MiB)
enum Rule { kNone = 0, kSkip = 1, kConcat = 2 };

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;

// The rows' inputs, which every net of a stack shares: s and index [rows], the table
// [ntable, width1] and each later layer's resnet rule.
template <typename T>
struct Inputs {
  const T* s = nullptr;
  const int32_t* index = nullptr;
  const T* table = nullptr;
  int64_t ntable = 0, rows = 0, width1 = 0;
  std::vector<int> rules;
  bool timesteps = true;  // false: every timestep is 1 (no resnet_dt), neither read nor trained
};

// One net's weights, viewed in place (net k of a stack of K nets), and the shared inputs.
template <typename T>
struct Net {
  const Inputs<T>* in = nullptr;
  const T* slope_data = nullptr;
  std::vector<Eigen::Map<const Matrix<T>>> w;
  std::vector<Eigen::Map<const Row<T>>> b, dt;

  Eigen::Map<const Row<T>> slope() const { return {slope_data, in->width1}; }
  int64_t out_width() const { return w.empty() ? in->width1 : w.back().cols(); }
};

// The computed rows grouped by net: positions p of `order` (the row of position p; empty: the
// identity, one net, every row computed) from start[k] to start[k + 1] are net k's rows, in
// their original order. The outputs of row r are outputs[first[r] .. first[r + 1]) (first
// empty: output r alone, source is the identity).
struct RowOrder {
  std::vector<int64_t> order, start, first, outputs;
  int64_t row(int64_t p) const { return order.empty() ? p : order[p]; }
  bool direct() const { return first.empty(); }
  template <typename F>
  void for_outputs(int64_t r, F f) const {
    if (first.empty()) {
      f(r);
      return;
    }
    for (int64_t q = first[r]; q < first[r + 1]; ++q) f(outputs[q]);
  }
};

// A block of at most kBlock positions of one net.
struct BlockRef {
  int net;
  int64_t p0, n;
};

// The nets of one op, their shared inputs, their rows grouped by net, and the blocks.
template <typename T>
struct Stack {
  Stack() = default;
  Stack(const Stack&) = delete;  // every net points to `in`
  Stack& operator=(const Stack&) = delete;
  Inputs<T> in;
  std::vector<Net<T>> nets;
  RowOrder rows;
  std::vector<BlockRef> blocks;
  int64_t outputs = 0;  // the number of output rows (source's length)
};

// The outputs of each row from source [outputs] (row indices in [0, nrows)): none of `rows`'
// first/outputs when source is the identity; else the outputs of row r, in their order, at
// first[r] .. first[r + 1].
Status read_outputs(const Tensor& source, int64_t nrows, RowOrder* rows) {
  const int64_t n = source.dim_size(0);
  const int32_t* src = source.flat<int32_t>().data();
  bool identity = n == nrows;
  for (int64_t o = 0; o < n; ++o) {
    if (src[o] < 0 || src[o] >= nrows)
      return tensorflow::errors::InvalidArgument("source[", o, "] = ", src[o],
                                                 " is outside the ", nrows, " rows");
    identity = identity && src[o] == o;
  }
  rows->first.clear();
  rows->outputs.clear();
  if (identity) return Status();
  rows->first.assign(nrows + 1, 0);
  for (int64_t o = 0; o < n; ++o) ++rows->first[src[o] + 1];
  for (int64_t r = 0; r < nrows; ++r) rows->first[r + 1] += rows->first[r];
  std::vector<int64_t> next(rows->first.begin(), rows->first.end() - 1);
  rows->outputs.resize(n);
  for (int64_t o = 0; o < n; ++o) rows->outputs[next[src[o]]++] = o;
  return Status();
}

// The stack of nets: one with slope [width] and matrices [in, out] (biases and timesteps
// [out]), K with slope [K, width] and matrices [K, in, out] (biases and timesteps [K, out]).
// Row i belongs to net index[i] / (ntable / K): the table's rows are K equal consecutive
// groups, one per net.
template <typename T>
Status read_stack(OpKernelContext* ctx, const std::vector<int>& rules, bool timesteps,
                  const Tensor& s, Stack<T>* stack) {
  std::vector<Net<T>>* nets = &stack->nets;
  RowOrder* rows = &stack->rows;
  std::vector<BlockRef>* blocks = &stack->blocks;
  const Tensor& index = ctx->input(1);
  const Tensor& table = ctx->input(2);
  const Tensor& slope = ctx->input(3);
  OpInputList mats, biases, steps;
  TF_RETURN_IF_ERROR(ctx->input_list("matrices", &mats));
  TF_RETURN_IF_ERROR(ctx->input_list("biases", &biases));
  TF_RETURN_IF_ERROR(ctx->input_list("timesteps", &steps));
  if (s.dims() != 1 || index.dims() != 1 || index.dim_size(0) != s.dim_size(0))
    return tensorflow::errors::InvalidArgument(
        "s and index must be vectors of one length (one entry per row), got ",
        s.shape().DebugString(), " and ", index.shape().DebugString());
  const bool stacked = slope.dims() == 2;
  const int64_t k_nets = stacked ? slope.dim_size(0) : 1;
  if (table.dims() != 2 || (slope.dims() != 1 && !stacked) ||
      slope.dim_size(slope.dims() - 1) != table.dim_size(1) || k_nets < 1 ||
      table.dim_size(0) % k_nets != 0 || table.dim_size(0) == 0)
    return tensorflow::errors::InvalidArgument(
        "table must be [K * P, width] and slope [width] (one net) or [K, width] (K >= 1 nets, "
        "P table rows each), got ", table.shape().DebugString(), " and ",
        slope.shape().DebugString());
  if (static_cast<int>(rules.size()) != mats.size())
    return tensorflow::errors::InvalidArgument("rules has ", rules.size(), " entries for ",
                                               mats.size(), " matrices");
  const int64_t width1 = table.dim_size(1);
  Inputs<T>& in = stack->in;
  in.s = s.flat<T>().data();
  in.index = index.flat<int32_t>().data();
  in.table = table.flat<T>().data();
  in.ntable = table.dim_size(0);
  in.rows = s.dim_size(0);
  in.width1 = width1;
  in.rules = rules;
  in.timesteps = timesteps;
  nets->clear();
  nets->resize(k_nets);
  for (int64_t k = 0; k < k_nets; ++k) {
    (*nets)[k].in = &in;
    (*nets)[k].slope_data = slope.flat<T>().data() + k * width1;
  }
  const int lead = stacked ? 1 : 0;  // the leading net axis of every layer tensor
  int64_t prev = width1;
  for (int l = 0; l < mats.size(); ++l) {
    const Tensor& w = mats[l];
    const Tensor& b = biases[l];
    const Tensor& dt = steps[l];
    if (w.dims() != 2 + lead || w.dim_size(lead) != prev || b.dims() != 1 + lead ||
        b.dim_size(lead) != w.dim_size(lead + 1) || dt.shape() != b.shape() ||
        (stacked && (w.dim_size(0) != k_nets || b.dim_size(0) != k_nets)))
      return tensorflow::errors::InvalidArgument(
          "layer ", l + 2, ": matrix ", w.shape().DebugString(), ", bias ",
          b.shape().DebugString(), " and timestep ", dt.shape().DebugString(),
          " do not follow a layer of width ", prev, stacked ? " in each of the " : "",
          stacked ? std::to_string(k_nets) : "", stacked ? " nets" : "");
    const int64_t width = w.dim_size(lead + 1);
    const int rule = rules[l];
    if (rule < kNone || rule > kConcat || (rule == kSkip && width != prev) ||
        (rule == kConcat && width != 2 * prev))
      return tensorflow::errors::InvalidArgument("layer ", l + 2, ": rule ", rule,
                                                 " does not fit widths ", prev, " -> ", width);
    for (int64_t k = 0; k < k_nets; ++k) {
      Net<T>& net = (*nets)[k];
      net.w.emplace_back(w.flat<T>().data() + k * prev * width, prev, width);
      net.b.emplace_back(b.flat<T>().data() + k * width, width);
      net.dt.emplace_back(dt.flat<T>().data() + k * width, width);
    }
    prev = width;
  }
  const int64_t nrows = s.dim_size(0), ntable = table.dim_size(0), per_net = ntable / k_nets;
  const int32_t* idx = index.flat<int32_t>().data();
  for (int64_t i = 0; i < nrows; ++i)
    if (idx[i] < 0 || idx[i] >= ntable)
      return tensorflow::errors::InvalidArgument("index[", i, "] = ", idx[i],
                                                 " is outside the table's ", ntable, " rows");
  const Tensor& source = ctx->input(4 + 3 * mats.size());
  if (source.dims() != 1)
    return tensorflow::errors::InvalidArgument("source must be a vector, got ",
                                               source.shape().DebugString());
  stack->outputs = source.dim_size(0);
  TF_RETURN_IF_ERROR(read_outputs(source, nrows, rows));
  // counting sort of the computed rows by net (stable); one net, every row computed: the
  // identity
  rows->order.clear();
  rows->start.assign(k_nets + 1, 0);
  auto computed = [&](int64_t i) { return rows->direct() || rows->first[i + 1] > rows->first[i]; };
  if (k_nets == 1 && rows->direct()) {
    rows->start[1] = nrows;
  } else {
    for (int64_t i = 0; i < nrows; ++i)
      if (computed(i)) ++rows->start[idx[i] / per_net + 1];
    for (int64_t k = 0; k < k_nets; ++k) rows->start[k + 1] += rows->start[k];
    std::vector<int64_t> next(rows->start.begin(), rows->start.end() - 1);
    rows->order.resize(rows->start[k_nets]);
    for (int64_t i = 0; i < nrows; ++i)
      if (computed(i)) rows->order[next[idx[i] / per_net]++] = i;
  }
  blocks->clear();
  for (int64_t k = 0; k < k_nets; ++k)
    for (int64_t p = rows->start[k]; p < rows->start[k + 1]; p += kBlock)
      blocks->push_back({static_cast<int>(k), p, std::min(kBlock, rows->start[k + 1] - p)});
  return Status();
}

// The activations of one block of n rows, layer by layer: x[l] holds the input of layer l + 2
// stacked as [h; dh/ds] (2n rows; n rows without the tangent); the first layer's output h1
// [n, width1] and, per later layer l, its tanh output (before the timestep) y[l] and the
// tangent's pre-activation u[l] ([n, out] each, u[l] right after y[l]: one product gives both)
// lie on the forward op's tape or in this block's own storage (h1_own, yu_own); z, bar and prev
// are work space.
template <typename T>
struct Block {
  using View = Eigen::Map<const Matrix<T>>;
  std::vector<Matrix<T>> x, yu_own;
  Matrix<T> h1_own, z, bar, prev;
  T* h1_at = nullptr;
  std::vector<T*> y_at, u_at;
  int64_t n = 0;

  View h1(int64_t width1) const { return View(h1_at, n, width1); }
  View y(int l, int64_t out) const { return View(y_at[l], n, out); }
  View u(int l, int64_t out) const { return View(u_at[l], n, out); }
};

// Places the block's h1, y[l] and u[l] (n rows each): from `at` on the tape (h1, then y[l]
// and u[l] per layer), or (at null) in the block's own storage.
template <typename T>
void block_places(const Net<T>& net, int64_t n, T* at, Block<T>* blk) {
  const int nl = static_cast<int>(net.w.size());
  blk->n = n;
  blk->y_at.resize(nl);
  blk->u_at.resize(nl);
  if (at == nullptr) {
    blk->h1_own.resize(n, net.in->width1);
    blk->h1_at = blk->h1_own.data();
    blk->yu_own.resize(nl);
  } else {
    blk->h1_at = at;
    at += n * net.in->width1;
  }
  for (int l = 0; l < nl; ++l) {
    const int64_t out = net.w[l].cols();
    if (at == nullptr) {
      blk->yu_own[l].resize(2 * n, out);
      blk->y_at[l] = blk->yu_own[l].data();
    } else {
      blk->y_at[l] = at;
      at += 2 * n * out;
    }
    blk->u_at[l] = blk->y_at[l] + n * out;
  }
}

// x[0] = [h1; dh1/ds] (the tangent rows: tanh'(p) slope) from h1.
template <typename T>
void first_input(const Eigen::Map<const Row<T>>& slope, bool tangent, Block<T>* blk) {
  const auto h1 = blk->h1(slope.cols());
  const int64_t n = blk->n;
  Matrix<T>& x0 = blk->x[0];
  x0.resize((tangent ? 2 : 1) * n, h1.cols());
  x0.topRows(n) = h1;
  if (tangent) x0.bottomRows(n) = ((1 - h1.array().square()).rowwise() * slope.array()).matrix();
}

// h += x by a layer's resnet rule (h [width], x [in]: skip, h = y + x; concat, h = y + [x, x]).
template <typename T>
inline void add_residual(int rule, const T* __restrict x, int64_t in, T* __restrict h) {
  if (rule == kSkip) {
#pragma omp simd
    for (int64_t j = 0; j < in; ++j) h[j] += x[j];
  } else if (rule == kConcat) {
#pragma omp simd
    for (int64_t j = 0; j < in; ++j) h[j] += x[j];
#pragma omp simd
    for (int64_t j = 0; j < in; ++j) h[in + j] += x[j];
  }
}

// Layer l's output [y dt; tanh'(z) u dt] (+ x[l] by the layer's resnet rule) from its tanh
// output y[l], tangent pre-activation u[l] and input x[l] (dt: the layer's timestep, none
// without resnet_dt), row i's h written at top(i) and its dh/ds at bottom(i), one row at a
// time: the forward pass and the tape's reader (load_block) make it with this one function,
// so both have the same numbers.
template <typename T, typename Top, typename Bottom>
void layer_output(const Net<T>& net, int l, bool tangent, const Block<T>& blk, Top top,
                  Bottom bottom) {
  const T* x = blk.x[l].data();
  const int64_t n = blk.n, width = net.w[l].cols(), in = net.w[l].rows();
  const T* __restrict dt = net.dt[l].data();
  const bool steps = net.in->timesteps;
  const int rule = net.in->rules[l];
  for (int64_t i = 0; i < n; ++i) {
    const T* __restrict y = blk.y_at[l] + i * width;
    T* __restrict h = top(i);
    if (steps) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) h[j] = y[j] * dt[j];
    } else {
      std::copy(y, y + width, h);
    }
    add_residual(rule, x + i * in, in, h);
    if (!tangent) continue;
    const T* __restrict u = blk.u_at[l] + i * width;
    T* __restrict d = bottom(i);
    if (steps) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) d[j] = ((1 - y[j] * y[j]) * u[j]) * dt[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) d[j] = (1 - y[j] * y[j]) * u[j];
    }
    add_residual(rule, x + (n + i) * in, in, d);
  }
}

// x[l + 1] = layer l's output (layer_output) in the block.
template <typename T>
void next_input(const Net<T>& net, int l, bool tangent, Block<T>* blk) {
  const int64_t n = blk->n, width = net.w[l].cols();
  Matrix<T>& next = blk->x[l + 1];
  next.resize((tangent ? 2 : 1) * n, width);
  T* at = next.data();
  layer_output(net, l, tangent, *blk, [=](int64_t i) { return at + i * width; },
               [=](int64_t i) { return at + (n + i) * width; });
}

// Forward pass of the rows at positions [p0, p0 + n) of `rows`: fills blk, its h1, y and u on
// the tape from `tape` on (null: in the block). The net's output [h; dh/ds] goes to the rows
// top(i) and bottom(i) (row i's h and dh/ds); with no layer after the first it is x[0].
template <typename T, typename Top, typename Bottom>
void forward(const Net<T>& net, const RowOrder& rows, int64_t p0, int64_t n, bool tangent,
             Block<T>* blk, T* tape, Top top, Bottom bottom) {
  const int nl = static_cast<int>(net.w.size());
  const auto slope = net.slope();
  blk->x.resize(nl + 1);
  block_places(net, n, tape, blk);
  const Inputs<T>& inputs = *net.in;
  Eigen::Map<Matrix<T>> h1(blk->h1_at, n, inputs.width1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows.row(p0 + i);
    h1.row(i) = inputs.s[r] * slope + Eigen::Map<const Row<T>>(
                                          inputs.table + inputs.index[r] * inputs.width1,
                                          inputs.width1);
  }
  h1.array() = h1.array().tanh();
  first_input(slope, tangent, blk);
  for (int l = 0; l < nl; ++l) {
    const Matrix<T>& x = blk->x[l];
    const int64_t width = net.w[l].cols(), in = net.w[l].rows();
    // [y; u] in place: the product of [h; dh/ds], then y = tanh(. + b) (Eigen's vectorised tanh)
    gemm<T>(false, false, x.rows(), width, in, x.data(), in, net.w[l].data(), width, T(0),
            blk->y_at[l], width);
    Eigen::Map<Matrix<T>> y(blk->y_at[l], n, width);
    y.rowwise() += net.b[l];
    y.array() = y.array().tanh();
    if (l + 1 < nl)
      next_input(net, l, tangent, blk);
    else
      layer_output(net, l, tangent, *blk, top, bottom);
  }
}

// The forward pass of a block whose output is not kept (the gradient's recomputation).
template <typename T>
void forward(const Net<T>& net, const RowOrder& rows, int64_t p0, int64_t n, bool tangent,
             Block<T>* blk) {
  const int64_t m = net.out_width();
  Matrix<T>& out = blk->z;
  out.resize((tangent ? 2 : 1) * n, m);
  T* at = out.data();
  forward(net, rows, p0, n, tangent, blk, static_cast<T*>(nullptr),
          [=](int64_t i) { return at + i * m; }, [=](int64_t i) { return at + (n + i) * m; });
}

// The tape's entries per computed row: the first layer's output h1, then per later layer its
// tanh output y and its tangent pre-activation u (its output width each). The layers' inputs
// [h; dh/ds] follow from these (first_input, next_input).
template <typename T>
int64_t tape_width(const Net<T>& net) {
  int64_t width = net.in->width1;
  for (const auto& w : net.w) width += 2 * w.cols();
  return width;
}

// The block's activations from the tape at `at` (read in place), as `forward` with the tangent
// leaves them for the gradient (the net's output is not needed and not made).
template <typename T>
void load_block(const Net<T>& net, int64_t n, const T* at, Block<T>* blk) {
  const int nl = static_cast<int>(net.w.size());
  blk->x.resize(nl + 1);
  block_places(net, n, const_cast<T*>(at), blk);  // only read through the block's views
  first_input(net.slope(), true, blk);
  for (int l = 0; l + 1 < nl; ++l) next_input(net, l, true, blk);
}

// The net of the stack on its rows: outputs first .. first + 2 of the op are g and dg/ds
// [outputs, width] and the tape.
template <typename T>
Status run_forward(OpKernelContext* ctx, const Stack<T>& stack, int first, Tensor** g,
                 Tensor** dg) {
  const Net<T>& net0 = stack.nets[0];
  const int64_t m = net0.out_width();
  TF_RETURN_IF_ERROR(ctx->allocate_output(first, TensorShape({stack.outputs, m}), g));
  TF_RETURN_IF_ERROR(ctx->allocate_output(first + 1, TensorShape({stack.outputs, m}), dg));
  T* gs = (*g)->flat<T>().data();
  T* dgs = (*dg)->flat<T>().data();
  const int64_t width = tape_width(net0), positions = stack.rows.start.back();
  const bool keep = !net0.w.empty() && positions * width * int64_t{sizeof(T)} <= kTapeBytes;
  Tensor* tape = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(
      first + 2, TensorShape({keep ? positions * width : 0}), &tape));
  T* tp = tape->flat<T>().data();
  const RowOrder& rows = stack.rows;
  auto blocks = [&](int64_t begin, int64_t end) {
    Block<T> blk;
    std::vector<int64_t> out(kBlock);  // each row's first output, where the net writes it
    for (int64_t k = begin; k < end; ++k) {
      const BlockRef& ref = stack.blocks[k];
      const Net<T>& net = stack.nets[ref.net];
      for (int64_t i = 0; i < ref.n; ++i) {
        const int64_t r = rows.row(ref.p0 + i);
        out[i] = rows.direct() ? r : rows.outputs[rows.first[r]];
      }
      forward(net, rows, ref.p0, ref.n, true, &blk, keep ? tp + ref.p0 * width : nullptr,
              [&](int64_t i) { return gs + out[i] * m; },
              [&](int64_t i) { return dgs + out[i] * m; });
      if (net.w.empty()) {  // the first layer's output: x[0]
        for (int64_t i = 0; i < ref.n; ++i) {
          Eigen::Map<Row<T>>(gs + out[i] * m, m) = blk.x[0].row(i);
          Eigen::Map<Row<T>>(dgs + out[i] * m, m) = blk.x[0].row(ref.n + i);
        }
      }
      if (rows.direct()) continue;
      for (int64_t i = 0; i < ref.n; ++i) {  // the row's further outputs: copies
        const int64_t r = rows.row(ref.p0 + i);
        for (int64_t q = rows.first[r] + 1; q < rows.first[r + 1]; ++q) {
          const int64_t o = rows.outputs[q];
          std::copy(gs + out[i] * m, gs + (out[i] + 1) * m, gs + o * m);
          std::copy(dgs + out[i] * m, dgs + (out[i] + 1) * m, dgs + o * m);
        }
      }
    }
  };
  const int64_t flops = 4 * kBlock * net0.in->width1 * m * std::max<int64_t>(1, net0.w.size());
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
      static_cast<int64_t>(stack.blocks.size()), flops, blocks);
  return Status();
}

template <typename T>
class EmbeddingNetOp : public OpKernel {
 public:
  explicit EmbeddingNetOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rules", &rules_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("resnet_dt", &resnet_dt_));
  }

  void Compute(OpKernelContext* ctx) override {
    Stack<T> stack;
    OP_REQUIRES_OK(ctx, read_stack(ctx, rules_, resnet_dt_, ctx->input(0), &stack));
    Tensor *g = nullptr, *dg = nullptr;
    OP_REQUIRES_OK(ctx, run_forward(ctx, stack, 0, &g, &dg));
  }

 private:
  std::vector<int> rules_;
  bool resnet_dt_ = true;
};

// TebdEmbeddingContract: the net on the rows of the environment matrix (s = rows[:, 0], and
// the shared rows' s after them), then A = rows^T g per atom (its rows / atoms consecutive
// rows), or per (atom, contraction group) where `group` gives each row's group.
template <typename T>
class EmbeddingContractOp : public OpKernel {
 public:
  explicit EmbeddingContractOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rules", &rules_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("resnet_dt", &resnet_dt_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& rows = ctx->input(0);
    OpInputList mats;
    OP_REQUIRES_OK(ctx, ctx->input_list("matrices", &mats));
    const Tensor& source = ctx->input(4 + 3 * mats.size());
    const Tensor& shared = ctx->input(5 + 3 * mats.size());
    const Tensor& natoms = ctx->input(6 + 3 * mats.size());
    const Tensor& group = ctx->input(7 + 3 * mats.size());
    const int64_t n = rows.dims() == 2 ? rows.dim_size(0) : -1;
    const int64_t atoms = natoms.dims() == 0 ? natoms.scalar<int32_t>()() : -1;
    OP_REQUIRES(ctx, n >= 0 && rows.dim_size(1) == 4 && shared.dims() == 1 && atoms >= 0 &&
                         (atoms == 0 ? n == 0 : n % atoms == 0) && source.NumElements() == n,
                tensorflow::errors::InvalidArgument(
                    "rows must be [atoms * slots, 4] (atoms ", natoms.DebugString(), "), source "
                    "one entry per row and shared_s a vector, got rows ",
                    rows.shape().DebugString(), ", source ", source.shape().DebugString(),
                    " and shared_s ", shared.shape().DebugString()));
    const bool grouped = group.NumElements() > 0;
    const int32_t* gv = grouped ? group.flat<int32_t>().data() : nullptr;
    OP_REQUIRES(ctx, grouped ? group.shape() == TensorShape({n}) &&
                                   groups_in_range(gv, n, groups_)
                             : groups_ == 1,
                tensorflow::errors::InvalidArgument(
                    "group must be one entry per row in [0, ", groups_, ") (empty: groups 1), "
                    "got ", group.shape().DebugString()));
    Tensor s;  // the candidate rows' s: each row's own, then the shared rows'
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(rows.dtype(), TensorShape({n + shared.dim_size(0)}),
                                           &s));
    T* sv = s.flat<T>().data();
    const T* rv = rows.flat<T>().data();
    for (int64_t i = 0; i < n; ++i) sv[i] = rv[4 * i];
    std::copy(shared.flat<T>().data(), shared.flat<T>().data() + shared.dim_size(0), sv + n);
    Stack<T> stack;
    OP_REQUIRES_OK(ctx, read_stack(ctx, rules_, resnet_dt_, s, &stack));
    Tensor *g = nullptr, *dg = nullptr;
    OP_REQUIRES_OK(ctx, run_forward(ctx, stack, 1, &g, &dg));
    const int64_t m = stack.nets[0].out_width(), k = atoms == 0 ? 0 : n / atoms;
    Tensor* a = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({atoms * groups_, 4, m}), &a));
    const T* gs = g->flat<T>().data();
    T* as = a->flat<T>().data();
    const int64_t per_atom = groups_ * 4 * m;
    auto contract = [&](int64_t begin, int64_t end) {  // as TebdBatchMatMul(rows, g, adj_x)
      std::fill(as + begin * per_atom, as + end * per_atom, T(0));
      for (int64_t b = begin; b < end; ++b)
        for_group_runs(gv == nullptr ? nullptr : gv + b * k, k,
                       [&](int64_t r0, int64_t r1, int q) {
                         thin_product<T>(true, false, 4, m, r1 - r0, rv + (b * k + r0) * 4, 4,
                                         gs + (b * k + r0) * m, m,
                                         as + b * per_atom + q * 4 * m, true);
                       });
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(atoms, 8 * k * m,
                                                                        contract);
  }

 private:
  std::vector<int> rules_;
  bool resnet_dt_ = true;
  int groups_ = 1;
};

// The sums of the gradients of one net's own weights (slope and the layers after the first).
template <typename T>
struct NetSums {
  Row<T> slope;
  std::vector<Matrix<T>> w;
  std::vector<Row<T>> b, dt;

  explicit NetSums(const Net<T>& net) {
    slope = Row<T>::Zero(net.in->width1);
    for (size_t l = 0; l < net.w.size(); ++l) {
      w.push_back(Matrix<T>::Zero(net.w[l].rows(), net.w[l].cols()));
      b.push_back(Row<T>::Zero(net.w[l].cols()));
      dt.push_back(Row<T>::Zero(net.w[l].cols()));
    }
  }

  void add(const NetSums& other) {
    slope += other.slope;
    for (size_t l = 0; l < w.size(); ++l) {
      w[l] += other.w[l];
      b[l] += other.b[l];
      dt[l] += other.dt[l];
    }
  }
};

// Per range of blocks, the sums of the weight gradients: the table's, and those of each net
// the range has rows of (made on its first block).
template <typename T>
struct Sums {
  Matrix<T> table;
  std::vector<std::unique_ptr<NetSums<T>>> nets;

  Sums(const Net<T>& net, size_t k_nets) : nets(k_nets) {
    table = Matrix<T>::Zero(net.in->ntable, net.in->width1);
  }

  NetSums<T>& of(int k, const Net<T>& net) {
    if (!nets[k]) nets[k] = std::make_unique<NetSums<T>>(net);
    return *nets[k];
  }
};

// sum_c w[c] x[c m + j], summed as the products of dense_gemm.h's thin_product sum it.
template <typename T>
inline T mix4(const T (&w)[4], const T* __restrict x, int64_t m, int64_t j) {
  return ((w[0] * x[j] + w[1] * x[m + j]) + w[2] * x[2 * m + j]) + w[3] * x[3 * m + j];
}

// row[j] = value(j) (assign) or row[j] += value(j), for j < m.
template <typename T, typename F>
inline void put_row(bool assign, int64_t m, T* __restrict row, F value) {
  if (assign) {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) row[j] = value(j);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) row[j] += value(j);
  }
}

// The adjoints of the outputs: of g, grad_g [outputs, M] (null: zero) plus, with env_rows, the
// part through a = rows^T g per atom (or per contraction group), env_rows[o] env_u[j] with j
// env_index[o] (null: o / slots), plus, with force_rows, the force pass's part (the gradient
// of TebdContractRowsGrad: force_rows[o] force_u[j]); of dg/ds, grad_dg (null: zero) or, with
// force_rows, the force pass's (force_along[o] env_rows[o]) force_u[j]. The force pass's
// parts are summed as TebdContractRowsGradGrad's products sum them.
template <typename T>
struct Adjoints {
  const T *grad_g = nullptr, *grad_dg = nullptr, *env_rows = nullptr, *env_u = nullptr;
  const T *force_rows = nullptr, *force_along = nullptr, *force_u = nullptr;
  const int32_t* env_index = nullptr;
  int64_t m = 0, slots = 1;

  int64_t atom(int64_t o) const { return env_index == nullptr ? o / slots : env_index[o]; }

  // output o's adjoint of g, written to row [m] (assign) or added to it
  void add_g(int64_t o, T* __restrict row, bool assign) const {
    const T* __restrict gg = grad_g == nullptr ? nullptr : grad_g + o * m;
    if (env_rows == nullptr) {
      if (gg != nullptr)
        put_row(assign, m, row, [&](int64_t j) { return gg[j]; });
      else if (assign)
        std::fill(row, row + m, T(0));
      return;
    }
    const T* r = env_rows + 4 * o;  // env_rows[o] env_u[atom]
    const T w[4] = {r[0], r[1], r[2], r[3]};
    const T* __restrict u = env_u + atom(o) * 4 * m;
    if (force_rows == nullptr) {
      put_row(assign, m, row, [&](int64_t j) {
        const T sum = mix4(w, u, m, j);
        return gg == nullptr ? sum : sum + gg[j];
      });
      return;
    }
    const T* z = force_rows + 4 * o;  // + force_rows[o] force_u[atom]
    const T zw[4] = {z[0], z[1], z[2], z[3]};
    const T* __restrict f = force_u + atom(o) * 4 * m;
    put_row(assign, m, row, [&](int64_t j) {
      const T sum = mix4(w, u, m, j) + mix4(zw, f, m, j);
      return gg == nullptr ? sum : sum + gg[j];
    });
  }

  // output o's adjoint of dg/ds, written to row [m] (assign) or added to it
  void add_dg(int64_t o, T* __restrict row, bool assign) const {
    if (force_rows != nullptr) {
      const T* r = env_rows + 4 * o;
      const T t = force_along[o];
      const T w[4] = {t * r[0], t * r[1], t * r[2], t * r[3]};
      const T* __restrict f = force_u + atom(o) * 4 * m;
      put_row(assign, m, row, [&](int64_t j) { return mix4(w, f, m, j); });
    } else if (grad_dg != nullptr) {
      const T* __restrict gd = grad_dg + o * m;
      put_row(assign, m, row, [&](int64_t j) { return gd[j]; });
    } else if (assign) {
      std::fill(row, row + m, T(0));
    }
  }
};

// Reverse pass of one block: adds its weight gradients to sums and table_sum, and writes
// grad_s of its rows; tape: the block on the forward op's tape (null: computed again).
template <typename T>
void backward(const Net<T>& net, const RowOrder& rows, int64_t p0, int64_t n, bool tangent,
              const T* tape, const Adjoints<T>& adj, Block<T>* blk, NetSums<T>* sums,
              Matrix<T>* table_sum, T* grad_s) {
  const T* grad_g = adj.grad_g;
  const T* grad_dg = adj.grad_dg;
  if (tape != nullptr)
    load_block(net, n, tape, blk);
  else
    forward(net, rows, p0, n, tangent, blk);
  const int nl = static_cast<int>(net.w.size());
  const int64_t m = net.out_width();
  Matrix<T>& bar = blk->bar;  // adjoint of [h; dh/ds] of the current layer
  bar.resize((tangent ? 2 : 1) * n, m);
  if (rows.order.empty() && rows.direct() && adj.env_rows == nullptr && grad_g != nullptr &&
      (!tangent || grad_dg != nullptr)) {
    bar.topRows(n) = Eigen::Map<const Matrix<T>>(grad_g + p0 * m, n, m);
    if (tangent) bar.bottomRows(n) = Eigen::Map<const Matrix<T>>(grad_dg + p0 * m, n, m);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      bool assign = true;  // the first output's adjoint written, the others' added
      T* __restrict top = bar.data() + i * m;
      T* __restrict bottom = bar.data() + (n + i) * m;
      rows.for_outputs(rows.row(p0 + i), [&](int64_t o) {  // the sum over the row's outputs
        adj.add_g(o, top, assign);
        if (tangent) adj.add_dg(o, bottom, assign);
        assign = false;
      });
    }
  }
  for (int l = nl - 1; l >= 0; --l) {
    const int64_t in = net.w[l].rows(), width = net.w[l].cols();
    const auto y = blk->y(l, width);
    const auto u = blk->u(l, width);
    Matrix<T>& zbar = blk->z;  // adjoint of [z; u]
    if (net.in->timesteps) {
      auto dtanh = (1 - y.array().square()).eval();  // tanh' = 1 - y^2
      // the timestep: its gradient, and the adjoints of the unscaled y and dy (in zbar)
      sums->dt[l] += (bar.topRows(n).array() * y.array()).matrix().colwise().sum();
      zbar = (bar.array().rowwise() * net.dt[l].array()).matrix();
      if (tangent) {
        sums->dt[l] += (bar.bottomRows(n).array() * dtanh * u.array())
                           .matrix().colwise().sum();
        // dy = tanh'(z) u: u gets bar_dy tanh'; z gets bar_y tanh' - 2 y tanh' u bar_dy
        zbar.topRows(n) = ((zbar.topRows(n).array() -
                            2 * y.array() * u.array() * zbar.bottomRows(n).array()) *
                           dtanh).matrix();
        zbar.bottomRows(n) = (zbar.bottomRows(n).array() * dtanh).matrix();
      } else {
        zbar = (zbar.array() * dtanh).matrix();
      }
    } else {  // the same without the timestep (1): no temporaries
      zbar.resize(bar.rows(), width);
      if (tangent) {
        zbar.topRows(n) = ((bar.topRows(n).array() -
                            2 * y.array() * u.array() * bar.bottomRows(n).array()) *
                           (1 - y.array().square())).matrix();
        zbar.bottomRows(n) = (bar.bottomRows(n).array() * (1 - y.array().square())).matrix();
      } else {
        zbar = (bar.array() * (1 - y.array().square())).matrix();
      }
    }
    gemm<T>(true, false, in, width, zbar.rows(), blk->x[l].data(), in, zbar.data(), width, T(1),
            sums->w[l].data(), width);
    sums->b[l] += zbar.topRows(n).colwise().sum();
    Matrix<T>& prev = blk->prev;
    prev.resize(zbar.rows(), in);
    gemm<T>(false, true, zbar.rows(), in, width, zbar.data(), width, net.w[l].data(), width,
            T(0), prev.data(), in);
    if (net.in->rules[l] == kSkip) {
      prev += bar;
    } else if (net.in->rules[l] == kConcat) {
      prev += bar.leftCols(in) + bar.rightCols(in);
    }
    std::swap(bar, prev);
  }
  // first layer: h1 = tanh(p), dh1/ds = tanh'(p) slope, p = s slope + table[index]
  const auto h1 = blk->h1(net.in->width1);
  const auto slope = net.slope();
  auto d1 = (1 - h1.array().square()).eval();
  Matrix<T>& pbar = blk->z;
  if (tangent) {
    sums->slope += (bar.bottomRows(n).array() * d1).matrix().colwise().sum();
    pbar = ((bar.topRows(n).array() -
             2 * ((bar.bottomRows(n).array() * h1.array()).rowwise() * slope.array())) *
            d1).matrix();
  } else {
    pbar = (bar.array() * d1).matrix();
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows.row(p0 + i);
    grad_s[r] = pbar.row(i).dot(slope);
    sums->slope += net.in->s[r] * pbar.row(i);
    table_sum->row(net.in->index[r]) += pbar.row(i);
  }
}

template <typename T>
class EmbeddingNetGradOp : public OpKernel {
 public:
  explicit EmbeddingNetGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rules", &rules_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("resnet_dt", &resnet_dt_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tangent", &tangent_));
  }

  void Compute(OpKernelContext* ctx) override {
    Stack<T> stack;
    OP_REQUIRES_OK(ctx, read_stack(ctx, rules_, resnet_dt_, ctx->input(0), &stack));
    const Net<T>& net0 = stack.nets[0];
    const int64_t m = net0.out_width();
    const int last = ctx->num_inputs() - 1;  // the inputs from tape on, counted from the end
    const Tensor& tape = ctx->input(last - 8);
    const Tensor& env_rows = ctx->input(last - 7);
    const Tensor& env_u = ctx->input(last - 6);
    const Tensor& env_index = ctx->input(last - 5);
    const Tensor& force_rows = ctx->input(last - 4);
    const Tensor& force_along = ctx->input(last - 3);
    const Tensor& force_u = ctx->input(last - 2);
    const Tensor& grad_g = ctx->input(last - 1);
    const Tensor& grad_dg = ctx->input(last);
    const TensorShape want({stack.outputs, m});
    const bool g_zero = grad_g.dims() == 2 && grad_g.dim_size(0) == 0 && stack.outputs > 0;
    const bool forced = force_rows.NumElements() > 0 || force_u.NumElements() > 0;
    const bool dg_zero = forced && grad_dg.dims() == 2 && grad_dg.dim_size(0) == 0;
    OP_REQUIRES(ctx, (grad_g.shape() == want || g_zero) &&
                         (!tangent_ || grad_dg.shape() == want || dg_zero),
                tensorflow::errors::InvalidArgument(
                    "grad_g and grad_dg must be ", want.DebugString(),
                    " (outputs x net width; grad_g may have no rows: zero; grad_dg too with "
                    "the force pass's inputs), got ",
                    grad_g.shape().DebugString(), " and ", grad_dg.shape().DebugString()));
    const bool contracted = env_rows.NumElements() > 0 || env_u.NumElements() > 0;
    const int64_t atoms = env_u.dims() == 3 ? env_u.dim_size(0) : -1;
    const bool indexed = env_index.NumElements() > 0;
    OP_REQUIRES(ctx, !contracted || (env_rows.shape() == TensorShape({stack.outputs, 4}) &&
                                     atoms > 0 && env_u.dim_size(1) == 4 &&
                                     env_u.dim_size(2) == m &&
                                     (indexed ? env_index.shape() ==
                                                        TensorShape({stack.outputs}) &&
                                                    groups_in_range(
                                                        env_index.flat<int32_t>().data(),
                                                        stack.outputs, atoms)
                                              : stack.outputs % atoms == 0)),
                tensorflow::errors::InvalidArgument(
                    "env_rows must be [", stack.outputs, ", 4] and env_u [atoms, 4, ", m,
                    "] (atoms dividing the outputs, or env_index [", stack.outputs,
                    "] naming each output's), or both empty, got ",
                    env_rows.shape().DebugString(), ", ", env_u.shape().DebugString(), " and ",
                    env_index.shape().DebugString()));
    OP_REQUIRES(ctx, !forced || (contracted && tangent_ &&
                                 force_rows.shape() == env_rows.shape() &&
                                 force_along.shape() == TensorShape({stack.outputs}) &&
                                 force_u.shape() == env_u.shape()),
                tensorflow::errors::InvalidArgument(
                    "force_rows, force_along and force_u must be shaped as env_rows, [",
                    stack.outputs, "] and as env_u (with env_rows and env_u, and tangent), or "
                    "all empty, got ", force_rows.shape().DebugString(), ", ",
                    force_along.shape().DebugString(), " and ", force_u.shape().DebugString()));
    Adjoints<T> adj;
    adj.m = m;
    adj.grad_g = g_zero ? nullptr : grad_g.flat<T>().data();
    adj.grad_dg = tangent_ && !dg_zero ? grad_dg.flat<T>().data() : nullptr;
    if (contracted) {
      adj.env_rows = env_rows.flat<T>().data();
      adj.env_u = env_u.flat<T>().data();
      if (indexed)
        adj.env_index = env_index.flat<int32_t>().data();
      else
        adj.slots = stack.outputs / atoms;
    }
    if (forced) {
      OP_REQUIRES(ctx, dg_zero, tensorflow::errors::InvalidArgument(
                                    "grad_dg must have no rows with the force pass's inputs"));
      adj.force_rows = force_rows.flat<T>().data();
      adj.force_along = force_along.flat<T>().data();
      adj.force_u = force_u.flat<T>().data();
    }
    Tensor* grad_s = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({net0.in->rows}), &grad_s));
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int64_t nblocks = static_cast<int64_t>(stack.blocks.size());
    const int64_t nranges = std::max<int64_t>(1, std::min<int64_t>(kRanges, nblocks));
    std::vector<Sums<T>> sums;
    for (int64_t k = 0; k < nranges; ++k) sums.emplace_back(net0, stack.nets.size());
    const int64_t width = tape_width(net0), positions = stack.rows.start.back();
    OP_REQUIRES(ctx, tape.dims() == 1 && (tape.dim_size(0) == 0 ||
                                          tape.dim_size(0) == positions * width),
                tensorflow::errors::InvalidArgument(
                    "tape must be TebdEmbeddingNet's tape output of these inputs (",
                    positions * width, " entries) or empty, got ", tape.shape().DebugString()));
    const T* tp = tape.dim_size(0) > 0 ? tape.flat<T>().data() : nullptr;
    T* gs = grad_s->flat<T>().data();
    if (!stack.rows.direct()) grad_s->flat<T>().setZero();  // rows no output names
    auto ranges = [&](int64_t begin, int64_t end) {
      Block<T> blk;
      for (int64_t k = begin; k < end; ++k) {
        for (int64_t b = nblocks * k / nranges; b < nblocks * (k + 1) / nranges; ++b) {
          const BlockRef& ref = stack.blocks[b];
          const Net<T>& net = stack.nets[ref.net];
          backward(net, stack.rows, ref.p0, ref.n, tangent_,
                   tp == nullptr ? nullptr : tp + ref.p0 * width, adj, &blk,
                   &sums[k].of(ref.net, net), &sums[k].table, gs);
        }
      }
    };
    const int64_t per_range = 12 * kBlock * net0.in->width1 * m * nblocks / nranges;
    workers->ParallelFor(nranges, std::max<int64_t>(per_range, 1 << 20), ranges);
    for (int64_t k = 1; k < nranges; ++k) {  // in range order: independent of the schedule
      sums[0].table += sums[k].table;
      for (size_t j = 0; j < stack.nets.size(); ++j) {
        if (!sums[k].nets[j]) continue;
        if (sums[0].nets[j])
          sums[0].nets[j]->add(*sums[k].nets[j]);
        else
          sums[0].nets[j] = std::move(sums[k].nets[j]);
      }
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(2).shape(), &out));
    Eigen::Map<Matrix<T>>(out->flat<T>().data(), net0.in->ntable, net0.in->width1) = sums[0].table;
    Tensor* grad_slope = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(3).shape(), &grad_slope));
    OpInputList mats;
    OP_REQUIRES_OK(ctx, ctx->input_list("matrices", &mats));
    OpOutputList grad_w, grad_b, grad_dt;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_matrices", &grad_w));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_biases", &grad_b));
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_timesteps", &grad_dt));
    std::vector<Tensor*> gw(net0.w.size()), gb(net0.w.size()), gdt(net0.w.size());
    for (size_t l = 0; l < net0.w.size(); ++l) {
      const TensorShape& bias_shape = ctx->input(4 + mats.size() + l).shape();
      OP_REQUIRES_OK(ctx, grad_w.allocate(l, mats[l].shape(), &gw[l]));
      OP_REQUIRES_OK(ctx, grad_b.allocate(l, bias_shape, &gb[l]));
      OP_REQUIRES_OK(ctx, grad_dt.allocate(l, bias_shape, &gdt[l]));
    }
    const NetSums<T> zero(net0);
    for (size_t j = 0; j < stack.nets.size(); ++j) {  // net j's slice of every stacked gradient
      const NetSums<T>& sj = sums[0].nets[j] ? *sums[0].nets[j] : zero;
      Eigen::Map<Row<T>>(grad_slope->flat<T>().data() + j * net0.in->width1, net0.in->width1) =
          sj.slope;
      for (size_t l = 0; l < net0.w.size(); ++l) {
        const int64_t in = net0.w[l].rows(), width = net0.w[l].cols();
        Eigen::Map<Matrix<T>>(gw[l]->flat<T>().data() + j * in * width, in, width) = sj.w[l];
        Eigen::Map<Row<T>>(gb[l]->flat<T>().data() + j * width, width) = sj.b[l];
        Eigen::Map<Row<T>>(gdt[l]->flat<T>().data() + j * width, width) = sj.dt[l];
      }
    }
  }

 private:
  std::vector<int> rules_;
  bool resnet_dt_ = true;
  bool tangent_ = true;
};

Status embedding_net_shape(InferenceContext* c) {
  ShapeHandle s, table, source;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &s));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &table));
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4 + 3 * n), 1, &source));
  // the last bias's last axis ([out] or [K, out])
  auto width = n == 0 ? c->Dim(table, 1) : c->Dim(c->input(3 + 2 * n), -1);
  c->set_output(0, c->Matrix(c->Dim(source, 0), width));
  c->set_output(1, c->Matrix(c->Dim(source, 0), width));
  c->set_output(2, c->Vector(c->UnknownDim()));
  return Status();
}

Status embedding_contract_shape(InferenceContext* c) {
  ShapeHandle rows, table, source;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &rows));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &table));
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  auto width = n == 0 ? c->Dim(table, 1) : c->Dim(c->input(3 + 2 * n), -1);
  c->set_output(0, c->MakeShape({c->UnknownDim(), c->MakeDim(4), width}));
  c->set_output(1, c->Matrix(c->Dim(rows, 0), width));
  c->set_output(2, c->Matrix(c->Dim(rows, 0), width));
  c->set_output(3, c->Vector(c->UnknownDim()));
  return Status();
}

Status embedding_net_grad_shape(InferenceContext* c) {
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  c->set_output(0, c->input(0));
  c->set_output(1, c->input(2));
  c->set_output(2, c->input(3));
  for (int l = 0; l < 3 * n; ++l) c->set_output(3 + l, c->input(4 + l));
  return Status();
}

}  // namespace

REGISTER_OP("TebdEmbeddingNet")
    .Input("s: T")
    .Input("index: int32")
    .Input("table: T")
    .Input("slope: T")
    .Input("matrices: N * T")
    .Input("biases: N * T")
    .Input("timesteps: N * T")
    .Input("source: int32")
    .Output("g: T")
    .Output("dg_ds: T")
    .Output("tape: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 0")
    .Attr("rules: list(int)")
    .Attr("resnet_dt: bool = true")
    .SetShapeFn(embedding_net_shape)
    .Doc(R"doc(
An embedding net of rows that vary in one scalar s (tanh layers), and its derivative along s.
The first pre-activation of row i is s[i] * slope + table[index[i]]; layer l (from the second)
is tanh(h W_l + b_l) * timesteps[l] with rules[l] (0: none, 1: skip, 2: concat) for its
residual connection; resnet_dt false: the timesteps are 1 (the inputs are not read, and
TebdEmbeddingNetGrad gives them a zero gradient).
A stack of K nets of the same widths: slope [K, width], matrices [K, in, out], biases and
timesteps [K, out]; the table's rows are K equal consecutive groups, and row i runs through the
net of its table row's group (index[i] / (rows of the table / K)).
g [outputs, width] is the net's output, dg_ds its derivative with respect to s, of the rows
source [outputs] names: output o is row source[o]'s (each named row computed once; a row no
output names is not computed). tape holds the activations TebdEmbeddingNetGrad needs (empty
when they would take more than 512 MiB).
)doc");

REGISTER_OP("TebdEmbeddingContract")
    .Input("rows: T")
    .Input("index: int32")
    .Input("table: T")
    .Input("slope: T")
    .Input("matrices: N * T")
    .Input("biases: N * T")
    .Input("timesteps: N * T")
    .Input("source: int32")
    .Input("shared_s: T")
    .Input("atoms: int32")
    .Input("group: int32")
    .Output("a: T")
    .Output("g: T")
    .Output("dg_ds: T")
    .Output("tape: T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 0")
    .Attr("rules: list(int)")
    .Attr("resnet_dt: bool = true")
    .Attr("groups: int >= 1 = 1")
    .SetShapeFn(embedding_contract_shape)
    .Doc(R"doc(
TebdEmbeddingNet on the rows of an environment matrix, and their contraction with it: the
candidate rows are rows [atoms * slots, 4] (s = rows[:, 0]) followed by shared_s [K] (rows
that stand for constant rows: source sends an output there); index [atoms * slots + K]; g and
dg_ds [atoms * slots, width] of the rows source names, and a [atoms, 4, width] = rows^T g per
atom (its slots consecutive rows). With contraction groups, group [atoms * slots] in
[0, groups): a [atoms * groups, 4, width], a[b * groups + q] = rows^T g over atom b's rows of
group q (group empty: groups 1).
)doc");

REGISTER_OP("TebdEmbeddingNetGrad")
    .Input("s: T")
    .Input("index: int32")
    .Input("table: T")
    .Input("slope: T")
    .Input("matrices: N * T")
    .Input("biases: N * T")
    .Input("timesteps: N * T")
    .Input("source: int32")
    .Input("tape: T")
    .Input("env_rows: T")
    .Input("env_u: T")
    .Input("env_index: int32")
    .Input("force_rows: T")
    .Input("force_along: T")
    .Input("force_u: T")
    .Input("grad_g: T")
    .Input("grad_dg_ds: T")
    .Output("grad_s: T")
    .Output("grad_table: T")
    .Output("grad_slope: T")
    .Output("grad_matrices: N * T")
    .Output("grad_biases: N * T")
    .Output("grad_timesteps: N * T")
    .Attr("T: {float, double}")
    .Attr("N: int >= 0")
    .Attr("rules: list(int)")
    .Attr("resnet_dt: bool = true")
    .Attr("tangent: bool = true")
    .SetShapeFn(embedding_net_grad_shape)
    .Doc(R"doc(
The gradient of TebdEmbeddingNet: of <grad_g, g> + <grad_dg_ds, dg_ds> with respect to s,
table, slope, the matrices, the biases and the timesteps (grad_s: 0 for a row that no entry of
source names). tape: TebdEmbeddingNet's tape output of the same inputs, or empty (the
forward pass is then computed again). The adjoint of g is grad_g (no rows: zero) plus, when
env_rows [outputs, 4] and env_u [atoms, 4, width] are not empty, env_rows[o] env_u[o / slots]
per output o (slots = outputs / atoms), or env_u[env_index[o]] where env_index [outputs] is not
empty (contraction groups): the adjoint of g through a = env_rows^T g per atom
(TebdEmbeddingContract), made here instead of as a matrix of g's size. When force_rows
[outputs, 4], force_along [outputs] and force_u (shaped as env_u) are not empty, the adjoints of
the force pass (TebdContractRowsGrad, differentiated by TebdContractRowsGradGrad) are made here
as well, force_rows[o] force_u[j] added to g's adjoint and (force_along[o] env_rows[o])
force_u[j] as dg_ds's (grad_dg_ds then has no rows), j as for env_u. With tangent false,
grad_dg_ds is taken as zero (and not read).
)doc");

#define REGISTER_CPU(T)                                                                      \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdEmbeddingNet").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),        \
      EmbeddingNetOp<T>);                                                                    \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdEmbeddingContract").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      EmbeddingContractOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdEmbeddingNetGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),    \
      EmbeddingNetGradOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
