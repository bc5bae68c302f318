// The engine as a sequence of ops (docs/design/layout.md, "The engine as ops"): a network
// is a list of ops, op k reading value k (value 0 is the input X) and writing value k + 1.
// Each op kind lives in its own file with its forward, its backward, the forward on Dual
// numbers the hvp runs (nn/dual.hpp: the same template on another type), and its
// inference form (Mode::inference).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "nn/dual.hpp"
#include "nn/noise.hpp"
#include "runtime/aligned_vector.hpp"

namespace bnfast {

// The shape of one sample's value: {features} for a dense value, {channels, length} or
// {channels, height, width} for a convolutional one (PyTorch's layout without the batch
// axis). The values are row-major (m, prod(shape)).
using SampleShape = std::vector<std::int64_t>;

// prod(shape[1:]): the positions of a channel (1 for a dense value, a channel per
// feature).
inline std::int64_t positions(const SampleShape& shape) {
  std::int64_t p = 1;
  for (std::size_t k = 1; k < shape.size(); ++k) p *= shape[k];
  return p;
}
inline std::int64_t sample_size(const SampleShape& shape) {
  return shape.empty() ? 0 : shape[0] * positions(shape);
}

// train: batch statistics (the loss being trained); inference: population (running)
// statistics, rows independent.
enum class Mode { train, inference };

// One evaluation on T = double (loss, gradient, predict) or Dual (hvp), and the scratch
// the ops of that evaluation share.
template <class T>
struct Pass {
  std::int64_t m = 0;  // rows
  Mode mode = Mode::train;
  const T* params = nullptr;
  T* grad = nullptr;                  // d loss / d params, written by backward
  const double* running = nullptr;    // inference: the running statistics
  const BatchNoise* noise = nullptr;  // train: one step's noise draws, or null
  std::vector<const T*> values;       // values[k]: the input of op k
  // A tangent pass (Dual only): the pass before ran at the same point (parameter values,
  // data, mode) and its values and gradients are still in place, so their value parts
  // (Dual::v) are right already; an op may then write only the tangents (Dual::d) of
  // what it outputs. An op that rewrites both parts computes the same values again:
  // slower, still right. Network::hvp (HvpReuse) sets it.
  bool tangent_only = false;

  // shared scratch (each op's own state lives in the op)
  AlignedVector<T> w_t;                 // W^T of the current dense op
  AlignedVector<T> w;                   // W, when the caller's parameters are not aligned
  AlignedVector<double> split[2];       // Dual products as double products
  std::vector<T> gamma, beta, work;     // constant gamma, beta as T; per-column work
  Workspace ws;                         // the BN kernels' scratch
};

class Op {
 public:
  Op(std::int64_t in_width, std::int64_t out_width) : in_width(in_width), out_width(out_width) {}
  virtual ~Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // out (m, out_width) from in (m, in_width); p.values holds the earlier values.
  virtual void forward(Pass<double>& p, const double* in, double* out) = 0;
  virtual void forward(Pass<Dual>& p, const Dual* in, Dual* out) = 0;
  // From dout = d loss / d out (the op may overwrite it): the parameters' share into
  // p.grad and, when need_din, d loss / d in, written to spare (m, in_width) or, for an
  // op that passes the gradient through, left in dout. Returns where d in is (null when
  // !need_din). in and out are the values of the last forward.
  virtual double* backward(Pass<double>& p, const double* in, const double* out, double* dout,
                           double* spare, bool need_din) = 0;
  virtual Dual* backward(Pass<Dual>& p, const Dual* in, const Dual* out, Dual* dout,
                         Dual* spare, bool need_din) = 0;

  // Whether a tangent pass (Pass::tangent_only) may run this op, opted into by each op
  // kind: it writes only into its own outputs and state, and whatever it reads keeps
  // the values of the last pass (it may then recompute them, or write only tangents).
  virtual bool tangent_pass() const { return false; }

  const std::int64_t in_width, out_width;
};

// The virtual entry points of an op kind written once: each calls the kind's templates
// forward_on<T> and backward_on<T>.
template <class Kind>
class OpOn : public Op {
 public:
  using Op::Op;
  void forward(Pass<double>& p, const double* in, double* out) override {
    self().forward_on(p, in, out);
  }
  void forward(Pass<Dual>& p, const Dual* in, Dual* out) override {
    self().forward_on(p, in, out);
  }
  double* backward(Pass<double>& p, const double* in, const double* out, double* dout,
                   double* spare, bool need_din) override {
    return self().backward_on(p, in, out, dout, spare, need_din);
  }
  Dual* backward(Pass<Dual>& p, const Dual* in, const Dual* out, Dual* dout, Dual* spare,
                 bool need_din) override {
    return self().backward_on(p, in, out, dout, spare, need_din);
  }

 private:
  Kind& self() { return static_cast<Kind&>(*this); }
};

// The explicit instantiations of an op kind's templates on double and Dual, written once
// (in the kind's .cpp, which defines them).
#define BNFAST_OP_INSTANTIATE(Kind)                                                        \
  template void Kind::forward_on(Pass<double>&, const double*, double*);                  \
  template void Kind::forward_on(Pass<Dual>&, const Dual*, Dual*);                        \
  template double* Kind::backward_on(Pass<double>&, const double*, const double*, double*, \
                                     double*, bool);                                      \
  template Dual* Kind::backward_on(Pass<Dual>&, const Dual*, const Dual*, Dual*, Dual*, bool)

// An op's state that exists once per number type (double for gradients, Dual for hvps).
template <template <class> class S>
struct PerType {
  S<double> on_double;
  S<Dual> on_dual;
  template <class T>
  S<T>& get() {
    if constexpr (std::is_same_v<T, double>) return on_double;
    else return on_dual;
  }
};

}  // namespace bnfast
