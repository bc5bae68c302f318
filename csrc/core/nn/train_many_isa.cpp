// train_many's slices, compiled once per instruction set (runtime/dispatch.hpp): the
// maths of nn/one_neuron_math.hpp on vectors of instances, one per lane (GCC/Clang vector
// extension, one native register a vector; kGroups of them interleave their dependency
// chains). Element-wise arithmetic rounds as the scalar one does, and -ffp-contract=off
// keeps the instruction sets apart from the results: every lane gives train()'s bits.
// The vectors cross no ABI boundary (everything here is internal): GCC's note that their
// passing convention depends on -mavx512f does not concern us.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "kernels/batchnorm.hpp"
#include "nn/train_many.hpp"
#include "runtime/simd.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

using i64 = std::int64_t;
// One native register of doubles (runtime/simd.hpp); kGroups of them interleave.
constexpr int L = static_cast<int>(kLanes);
constexpr int kGroups = 2;
using vd = vec;
using vl = mask;
BNFAST_HOT vd where(vl m, vd a, vd b) { return select(m, a, b); }

// f applied to each native register of a (and b): the instructions of this variant.
#if defined(__AVX__)
using native = __m256d;
#elif defined(__SSE2__)
using native = __m128d;
#endif

template <class R, class F>
BNFAST_HOT R per_register(vd a, vd b, F f) {
  R r;
#if defined(__SSE2__)
  constexpr int width = sizeof(native);
  for (int at = 0; at < static_cast<int>(sizeof(vd)); at += width) {
    native x, y;
    std::memcpy(&x, reinterpret_cast<const char*>(&a) + at, width);
    std::memcpy(&y, reinterpret_cast<const char*>(&b) + at, width);
    const native z = f(x, y);
    std::memcpy(reinterpret_cast<char*>(&r) + at, &z, width);
  }
#else
  r = f(a, b);
#endif
  return r;
}

// Lane-wise comparisons (ordered: false where a NaN is involved, as in scalar code).
enum class Cmp { ge, lt, eq };

template <Cmp C>
BNFAST_HOT vl compare(vd a, vd b) {
#if defined(__AVX__)
  constexpr int predicate = C == Cmp::ge ? _CMP_GE_OQ : C == Cmp::lt ? _CMP_LT_OQ : _CMP_EQ_OQ;
  return per_register<vl>(a, b, [](native x, native y) { return _mm256_cmp_pd(x, y, predicate); });
#elif defined(__SSE2__)
  return per_register<vl>(a, b, [](native x, native y) {
    if constexpr (C == Cmp::ge) return _mm_cmpge_pd(x, y);
    else if constexpr (C == Cmp::lt) return _mm_cmplt_pd(x, y);
    else return _mm_cmpeq_pd(x, y);
  });
#else
  if constexpr (C == Cmp::ge) return a >= b;
  else if constexpr (C == Cmp::lt) return a < b;
  else return a == b;
#endif
}

struct VectorOps {
  using Mask = vl;
  static BNFAST_HOT vd sqrt(vd x) {
#if defined(__AVX__)
    return per_register<vd>(x, x, [](native a, native) { return _mm256_sqrt_pd(a); });
#elif defined(__SSE2__)
    return per_register<vd>(x, x, [](native a, native) { return _mm_sqrt_pd(a); });
#else
    vd r;
    for (int l = 0; l < L; ++l) r[l] = std::sqrt(x[l]);
    return r;
#endif
  }
  static BNFAST_HOT vl ge(vd a, vd b) { return compare<Cmp::ge>(a, b); }
  static BNFAST_HOT vd abs(vd x) {  // the sign bit cleared, as std::fabs
    return reinterpret_cast<vd>(reinterpret_cast<vl>(x) & 0x7fffffffffffffffLL);
  }
  // std::max's choice: b when a < b, else a
  static BNFAST_HOT vd max(vd a, vd b) { return where(compare<Cmp::lt>(a, b), b, a); }
  static BNFAST_HOT vl finite(vd x) { return compare<Cmp::eq>(x - x, vd{}); }
  static BNFAST_HOT bool all(vl m) {
#if defined(__AVX__)
    return _mm256_movemask_pd(reinterpret_cast<__m256d>(m)) == 0xf;
#elif defined(__SSE2__)
    return _mm_movemask_pd(reinterpret_cast<__m128d>(m)) == 0x3;
#else
    for (int l = 0; l < L; ++l)
      if (!m[l]) return false;
    return true;
#endif
  }
};

// The state of a group that changes during a slice (kept in the runner's locals).
template <int IN>
struct LaneState {
  NeuronParams<IN, vd> p;
  vl active;  // lanes still running
};

// One group of L instances: instances first, first + 1, ... below `end` (the lanes past
// it repeat instance end - 1 and write nothing), stepped with the control flow of
// nn/train_loop.hpp per lane.
template <int IN, int M>
class Group {
 public:
  Group(const ManyJob& job, i64 first, i64 end, std::unique_ptr<Network>& general)
      : job_(job), general_(general) {
    const Network& net = *job.net;
    const NormSpec& norm = *net.layers()[0].norm;
    o_ = net.layer_offsets()[0];
    P_ = net.num_params();
    shape_.bias = o_.b >= 0;
    shape_.trainable = norm.trainable;
    shape_.eps = norm.eps;
    const i64 m = job.problem.m;
    shape_.inv_m = 1.0 / static_cast<double>(m);
    shape_.scale = net.loss_kind() == LossKind::mean ? shape_.inv_m : 1.0;
    shape_.two_scale = 2.0 * shape_.scale;
    set_.m = static_cast<int>(m);
    const ManyProblem& pb = job.problem;
    for (int l = 0; l < L; ++l) {
      const i64 i = std::min(first + l, end - 1);
      instance_[l] = i;
      const double* p = job.state.params + i * P_;
      set_.set(l, pb.X + i * pb.x_stride, pb.Y + i * pb.y_stride);
      for (int k = 0; k < IN; ++k) start_.p.w[k][l] = p[o_.w + k];
      start_.p.b[l] = shape_.bias ? p[o_.b] : 0.0;
      start_.p.gamma[l] = shape_.trainable ? p[o_.gamma] : norm.gamma[0];
      start_.p.beta[l] = shape_.trainable ? p[o_.beta] : norm.beta[0];
      lr_[l] = pb.lr[i * pb.lr_stride];
      owned_[l] = first + l < end;
      start_.active[l] =
          owned_[l] && job.state.status[i] == static_cast<std::int8_t>(ManyStatus::finished)
              ? -1 : 0;
    }
  }

  LaneState<IN> start() const { return start_; }

  // Step s (s == steps: the final evaluation only) of the lanes in st.
  BNFAST_HOT void step(LaneState<IN>& st, i64 s, bool record, bool last) {
    NeuronStep<IN, vd> g;
    const vl ok = neuron_step<VectorOps>(set_, shape_, st.p, !last, g);
    if (!VectorOps::all(ok | ~st.active)) {
      g = general_lanes(~ok & st.active, !last, s, g, st.p, st.active);
      st.active = still_active_;
    }
    const vl finite = VectorOps::finite(g.loss);
    if (!VectorOps::all(finite | ~st.active))
      st.active = stop(st.active, st.active & ~finite, ManyStatus::diverged, s);
    if (record) {
      const i64 every = job_.record_every, records = job_.steps / every + 1;
      double* out = job_.state.losses + s / every;
      for (int l = 0; l < L; ++l)
        if (st.active[l]) out[instance_[l] * records] = g.loss[l];
    }
    if (last) return;
    NeuronParams<IN, vd> next = st.p;
    const vl fits = neuron_update<VectorOps>(shape_, g, lr_, next);
    if (!VectorOps::all(fits | ~st.active))
      st.active = stop(st.active, st.active & ~fits, ManyStatus::overflowed, s);
    for (int k = 0; k < IN; ++k) st.p.w[k] = where(st.active, next.w[k], st.p.w[k]);
    if (shape_.bias) st.p.b = where(st.active, next.b, st.p.b);
    if (shape_.trainable) {
      st.p.gamma = where(st.active, next.gamma, st.p.gamma);
      st.p.beta = where(st.active, next.beta, st.p.beta);
    }
  }

  // The lanes' params back to the state arrays after steps [.., s1).
  void store(const LaneState<IN>& st, i64 s1) const {
    for (int l = 0; l < L; ++l) {
      if (!owned_[l]) continue;
      const i64 i = instance_[l];
      double* q = job_.state.params + i * P_;
      for (int k = 0; k < IN; ++k) q[o_.w + k] = st.p.w[k][l];
      if (shape_.bias) q[o_.b] = st.p.b[l];
      if (shape_.trainable) {
        q[o_.gamma] = st.p.gamma[l];
        q[o_.beta] = st.p.beta[l];
      }
      if (st.active[l]) job_.state.steps_done[i] = std::min(s1, job_.steps);
    }
  }

 private:
  // Lanes `which` stop at step s (their params stay those of the step); returns the
  // lanes still active.
  BNFAST_COLD vl stop(vl active, vl which, ManyStatus why, i64 s) {
    for (int l = 0; l < L; ++l) {
      if (!which[l]) continue;
      if (owned_[l]) {
        job_.state.status[instance_[l]] = static_cast<std::int8_t>(why);
        job_.state.steps_done[instance_[l]] = s;
      }
      active[l] = 0;
    }
    return active;
  }

  // The lanes `which` whose step belongs to the general kernels (neuron_step's mask):
  // evaluated by Network::loss as train() does, on a copy of the network owned by this
  // thread. A zero-variance error stops the lane; the lanes still active go to
  // still_active_ (by value in and out: the caller's locals stay in registers).
  BNFAST_COLD NeuronStep<IN, vd> general_lanes(vl which, bool grad, i64 s,
                                               NeuronStep<IN, vd> g, NeuronParams<IN, vd> p,
                                               vl active) {
    const Network& net = *job_.net;
    if (!general_) general_ = std::make_unique<Network>(net.layers(), net.loss_kind());
    std::vector<double> params(static_cast<std::size_t>(P_)), dp(params.size());
    const ManyProblem& pb = job_.problem;
    for (int l = 0; l < L; ++l) {
      if (!which[l]) continue;
      for (int k = 0; k < IN; ++k) params[o_.w + k] = p.w[k][l];
      if (shape_.bias) params[o_.b] = p.b[l];
      if (shape_.trainable) {
        params[o_.gamma] = p.gamma[l];
        params[o_.beta] = p.beta[l];
      }
      const i64 i = instance_[l];
      try {
        g.loss[l] = general_->loss(params.data(), pb.X + i * pb.x_stride,
                                   pb.Y + i * pb.y_stride, pb.m, grad ? dp.data() : nullptr);
      } catch (const ZeroVarianceError&) {
        vl lane{};
        lane[l] = -1;
        active = stop(active, lane, ManyStatus::zero_variance, s);
        continue;
      }
      if (!grad) continue;
      for (int k = 0; k < IN; ++k) g.u[k][l] = dp[o_.w + k];
      g.coef[l] = 1.0;
      if (shape_.bias) g.db[l] = dp[o_.b];
      if (shape_.trainable) {
        g.dgamma[l] = dp[o_.gamma];
        g.dbeta[l] = dp[o_.beta];
      }
    }
    still_active_ = active;
    return g;
  }

  const ManyJob& job_;
  std::unique_ptr<Network>& general_;
  ParamOffsets o_;
  i64 P_ = 0;
  NeuronShape shape_;
  CentredSet<IN, M, vd> set_;
  LaneState<IN> start_{};
  vd lr_{};
  vl still_active_{};
  bool owned_[L] = {};
  i64 instance_[L] = {};
};

// Instances [i0, i1) for steps [s0, s1): kGroups groups at a time, stepped in turn so
// that their independent dependency chains overlap.
template <int IN, int M>
void run_instances(const ManyJob& job, i64 i0, i64 i1, i64 s0, i64 s1) {
  std::unique_ptr<Network> general;  // made on the first step that needs it
  const i64 every = job.record_every;
  for (i64 first = i0; first < i1; first += kGroups * L) {
    std::unique_ptr<Group<IN, M>> groups[kGroups];
    LaneState<IN> st[kGroups];
    for (int j = 0; j < kGroups; ++j) {
      groups[j] = std::make_unique<Group<IN, M>>(job, std::min(first + j * L, i1 - 1), i1,
                                                 general);
      st[j] = groups[j]->start();
    }
    i64 until_record = (every - s0 % every) % every;
    for (i64 s = s0; s < s1; ++s) {
      const bool record = until_record == 0;
      until_record = record ? every - 1 : until_record - 1;
      const bool last = s == job.steps;
      for (int j = 0; j < kGroups; ++j) groups[j]->step(st[j], s, record, last);
    }
    for (int j = 0; j < kGroups; ++j) groups[j]->store(st[j], s1);
  }
}

template <int IN>
void slice_rows(const ManyJob& job, i64 i0, i64 i1, i64 s0, i64 s1) {
  with_row_count<IN>(job.problem.m, [&](auto rows) {
    run_instances<IN, decltype(rows)::value>(job, i0, i1, s0, s1);
  });
}

template <int... IN>
void slice_in(std::integer_sequence<int, IN...>, const ManyJob& job, i64 i0, i64 i1, i64 s0,
              i64 s1) {
  const i64 in = job.net->in_features();
  ((in == IN + 1 ? (slice_rows<IN + 1>(job, i0, i1, s0, s1), true) : false) || ...);
}

void slice(const ManyJob& job, i64 i0, i64 i1, i64 s0, i64 s1) {
  slice_in(std::make_integer_sequence<int, kOneNeuronMaxInputs>{}, job, i0, i1, s0, s1);
}

}  // namespace

ManySlice many_slice() { return &slice; }

}  // namespace bnfast::BNFAST_ISA
