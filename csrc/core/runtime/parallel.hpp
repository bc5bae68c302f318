// Thread control for the kernels: a process-wide thread count and a static split of
// work into chunks. Results depend only on the chunk count, never on scheduling, so a
// kernel is deterministic for a fixed thread count.
#pragma once
#include <algorithm>
#include <cstdint>

namespace bnfast {

// Number of threads the kernels may use (>= 1). Default: the hardware's cores.
// set_num_threads requires n >= 1 (bnfast.set_num_threads checks it).
int num_threads();
void set_num_threads(int n);

// True in a process made by fork() after this library was loaded. OpenMP's thread pool
// does not survive a fork (a child's first parallel region can wait forever for the
// parent's threads), so such a child runs every chunk on its own thread: same chunks,
// same results, no pool.
bool in_forked_child();

// How many chunks to split `work` elements into: 1 below the serial threshold
// (thread wake-up would cost more than it saves), else up to num_threads().
inline constexpr std::int64_t kSerialThreshold = 1 << 16;
inline int chunk_count(std::int64_t work, std::int64_t units) {
  if (work < kSerialThreshold || units < 2) return 1;
  const std::int64_t by_work = work / (kSerialThreshold / 2);
  return static_cast<int>(std::max<std::int64_t>(
      1, std::min<std::int64_t>({static_cast<std::int64_t>(num_threads()), by_work, units})));
}

// [begin, end) of chunk k when `units` are split into `chunks` nearly equal parts.
inline std::int64_t chunk_begin(std::int64_t units, int chunks, int k) {
  return units * k / chunks;
}

// Runs f(k) for k in [0, chunks), concurrently when chunks > 1. f must not throw.
template <class F>
void parallel_chunks(int chunks, F&& f) {
  if (chunks <= 1) {
    f(0);
    return;
  }
  if (in_forked_child()) {
    for (int k = 0; k < chunks; ++k) f(k);
    return;
  }
#if defined(BNFAST_HAVE_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(chunks)
  for (int k = 0; k < chunks; ++k) f(k);
#else
  for (int k = 0; k < chunks; ++k) f(k);
#endif
}

}  // namespace bnfast
