// Thread control for the kernels: a process-wide thread count and a static split of
// work into chunks. Results depend only on the chunk count, never on scheduling, so a
// kernel is deterministic for a fixed thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace bnfast {

// Number of threads the kernels may use (>= 1). Default: the hardware's cores.
// set_num_threads requires n >= 1 (bnfast.set_num_threads checks it).
int num_threads();
void set_num_threads(int n);

// True in a process made by fork() after this library was loaded. The thread team's
// workers do not survive a fork (only the forking thread does), so such a child runs
// every chunk on its own thread: same chunks, same results, no team.
bool in_forked_child();

// How many chunks to split `work` elements into: 1 below the serial threshold
// (thread wake-up would cost more than it saves), else up to num_threads().
inline constexpr std::int64_t kSerialThreshold = 1 << 16;
// The threshold inside a training step (FineGrain): a step is a long run of calls, so
// the thread team stays awake between them.
inline constexpr std::int64_t kStepGrain = std::int64_t{1} << 13;
// The threshold in force on this thread (see FineGrain).
inline thread_local std::int64_t t_serial_threshold = kSerialThreshold;
inline int chunk_count(std::int64_t work, std::int64_t units) {
  const std::int64_t threshold = t_serial_threshold;
  if (work < threshold || units < 2) return 1;
  const std::int64_t by_work = work / (threshold / 2);
  return static_cast<int>(std::max<std::int64_t>(
      1, std::min<std::int64_t>({static_cast<std::int64_t>(num_threads()), by_work, units})));
}

// Lowers the serial threshold on this thread while it lives. For callers that make long
// runs of small calls back to back (a training step: dozens of products and BN passes of
// ~10^4 elements): the OpenMP team is already awake, so a split pays off sooner than for
// a lone call. Chunk counts, and so results, still depend only on the thread count.
class FineGrain {
 public:
  explicit FineGrain(std::int64_t threshold) : saved_(t_serial_threshold) {
    t_serial_threshold = threshold;
  }
  ~FineGrain() { t_serial_threshold = saved_; }
  FineGrain(const FineGrain&) = delete;
  FineGrain& operator=(const FineGrain&) = delete;

 private:
  std::int64_t saved_;
};

// [begin, end) of chunk k when `units` are split into `chunks` nearly equal parts.
inline std::int64_t chunk_begin(std::int64_t units, int chunks, int k) {
  return units * k / chunks;
}

// f(ctx, k) for k in [0, chunks), on the thread team (runtime/thread_team.cpp) when it
// is free, else on the calling thread; either way every chunk runs exactly once. Called
// from inside a chunk, or in a forked child, it runs the chunks in order on the caller.
using ChunkFn = void (*)(void* ctx, int chunk);
void run_chunks(int chunks, ChunkFn fn, void* ctx);

// Runs f(k) for k in [0, chunks), concurrently when chunks > 1. f should not throw: if a
// chunk does, the exception reaches the caller once the job has ended (on the team,
// after every chunk; run serially, the later chunks do not run).
template <class F>
void parallel_chunks(int chunks, F&& f) {
  if (chunks <= 1) {
    f(0);
    return;
  }
  using Body = std::remove_reference_t<F>;
  run_chunks(chunks, [](void* ctx, int k) { (*static_cast<Body*>(ctx))(k); },
             const_cast<void*>(static_cast<const void*>(&f)));
}

// f(first, last) over the rows [first, last) of m rows of `width` elements each, rows
// split across threads (for passes whose rows are independent: the split changes no
// result).
template <class F>
void split_row_ranges(std::int64_t m, std::int64_t width, F&& f) {
  const int chunks = chunk_count(m * width, m);
  parallel_chunks(chunks,
                  [&](int c) { f(chunk_begin(m, chunks, c), chunk_begin(m, chunks, c + 1)); });
}

// f(begin, end) over the elements of an (m, width) row-major block, rows split across
// threads (for elementwise passes).
template <class F>
void split_rows(std::int64_t m, std::int64_t width, F&& f) {
  split_row_ranges(m, width, [&](std::int64_t r0, std::int64_t r1) { f(r0 * width, r1 * width); });
}

}  // namespace bnfast
