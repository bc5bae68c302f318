#include "nn/train_many.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>

#include "runtime/dispatch.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

bool train_many(const Network& net, const ManyProblem& problem, const ManyState& state,
                i64 steps, i64 record_every, const PollHook& poll) {
  static const ManySlice slice = select_isa(baseline::many_slice(), avx2::many_slice());
  const ManyJob job{&net, problem, state, steps, record_every};
  if (problem.k == 0) return true;
  // a thread's share: at least 32 instances (several groups of SIMD lanes)
  const int chunks = static_cast<int>(
      std::max<i64>(1, std::min<i64>(num_threads(), (problem.k + 31) / 32)));
  // The run goes in slices of `stride` steps, every group advancing by a slice, so that
  // the calling thread polls between slices; the stride adapts to 10-50 ms a slice.
  using Clock = std::chrono::steady_clock;
  i64 stride = 4;
  for (i64 s0 = 0; s0 <= steps;) {
    const i64 s1 = s0 + std::min(stride, steps + 1 - s0);  // no overflow: steps < 2^63 - 1
    const auto start = Clock::now();
    // parallel_chunks' bodies must not throw (an exception leaving an OpenMP region
    // terminates): the first one (bad_alloc, an error of the general step) is carried out.
    std::exception_ptr failure;
    std::mutex failure_lock;
    parallel_chunks(chunks, [&](int t) {
      try {
        slice(job, chunk_begin(problem.k, chunks, t), chunk_begin(problem.k, chunks, t + 1),
              s0, s1);
      } catch (...) {
        const std::lock_guard<std::mutex> hold(failure_lock);
        if (!failure) failure = std::current_exception();
      }
    });
    if (failure) std::rethrow_exception(failure);
    s0 = s1;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (ms < 10 && stride < (i64{1} << 40)) stride *= 2;
    else if (ms > 50 && stride > 1) stride /= 2;
    if (poll && s0 <= steps && poll()) return false;
  }
  return true;
}

}  // namespace bnfast
