// The thread team behind parallel_chunks (runtime/parallel.hpp): persistent workers that
// spin briefly between jobs, then sleep. A training step runs ~20 parallel regions of
// 5-50 us each; an OpenMP fork/join costs 1.5-3 us on the 2-core development VM, this
// team's about a tenth of that (one cache line each way). Worker w runs chunk w + 1,
// the caller chunk 0 and then every chunk no worker has taken yet (a worker descheduled
// by a busy host, or still waking, would otherwise hold up each region by a time
// slice); which thread runs a chunk never changes a result.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "runtime/parallel.hpp"

namespace bnfast {
namespace {

inline void cpu_relax() {
#if defined(__SSE2__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// A worker spins this many pauses (~50-100 us) for the next job before it sleeps: the
// regions of one step come microseconds apart, an idle process costs no CPU.
constexpr int kSpinsBeforeSleep = 1 << 12;
// The caller spins this many pauses for the workers before it yields its core to them
// (a worker descheduled by a busy host).
constexpr int kSpinsBeforeYield = 1 << 14;
// After its own chunk, the caller spins this many pauses (~10 us) before it runs the
// chunks no worker has claimed.
constexpr int kSpinsBeforeTaking = 1 << 9;

// The team's inside-a-chunk flag: a parallel_chunks call from inside a chunk runs
// serially (no nested teams).
thread_local bool t_in_chunk = false;

class ThreadTeam {
 public:
  // Runs fn(ctx, k) for k < chunks on the caller and chunks - 1 workers; false (nothing
  // run) when another thread is using the team.
  bool run(int chunks, ChunkFn fn, void* ctx) {
    if (chunks > static_cast<int>(kCountMask)) return false;  // more than the word holds
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    if (!grow(chunks - 1)) {  // no thread to be had: the caller runs the job alone
      busy_.store(false, std::memory_order_release);
      return false;
    }
    fn_ = fn;
    ctx_ = ctx;
    pending_.store(chunks - 1, std::memory_order_relaxed);
    // One word carries the job number and its chunk count, so that a worker that is not
    // in this job never reads a later job's count with this job's number.
    const std::uint64_t word = (++jobs_ << kCountBits) | static_cast<std::uint64_t>(chunks);
    word_.store(word, std::memory_order_seq_cst);
    // Wakes the job's sleeping workers, and only those: a team grown to 1024 workers and
    // then given jobs of 2 chunks must not wake (and set spinning) 1022 threads a job.
    for (int w = 0; w < chunks - 1; ++w) {
      Slot& slot = *slots_[static_cast<std::size_t>(w)];
      if (slot.asleep.load(std::memory_order_seq_cst)) {  // pairs with park()
        std::lock_guard<std::mutex> lock(slot.mutex);
        slot.wake.notify_one();
      }
    }
    // Chunks should not throw (parallel.hpp); if one does anyway, the job still ends
    // before the exception leaves: the workers may be using the caller's frame.
    std::exception_ptr error;
    auto run_chunk = [&](int chunk) {
      t_in_chunk = true;
      try {
        fn(ctx, chunk);
      } catch (...) {
        if (!error) error = std::current_exception();
      }
      t_in_chunk = false;
    };
    run_chunk(0);
    // The workers' chunks are about as long as the caller's, so they normally end within
    // a short spin; a chunk still unclaimed after it has a worker descheduled or asleep.
    for (int spins = 0; spins < kSpinsBeforeTaking; ++spins) {
      if (pending_.load(std::memory_order_acquire) == 0) break;
      cpu_relax();
    }
    if (pending_.load(std::memory_order_acquire) != 0)
      for (int w = 0; w < chunks - 1; ++w)
        if (take(*slots_[static_cast<std::size_t>(w)], jobs_)) {
          run_chunk(w + 1);
          pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0;) {
      if (++spins < kSpinsBeforeYield) {
        cpu_relax();
      } else {
        std::this_thread::yield();
        spins = 0;
      }
    }
    if (!error) std::swap(error, worker_error_);
    worker_error_ = nullptr;
    busy_.store(false, std::memory_order_release);
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  static constexpr int kCountBits = 16;  // chunks <= num_threads() < 2^16 (set_num_threads)
  static constexpr std::uint64_t kCountMask = (std::uint64_t{1} << kCountBits) - 1;

  // A worker's own sleeping place, on its own cache line: run() wakes exactly the
  // workers its job needs.
  struct alignas(64) Slot {
    std::atomic<bool> asleep{false};
    // The last job whose chunk w + 1 someone took, on a line of its own: the worker's
    // claim then finds it in its own cache (the caller reads it only to take a chunk).
    alignas(64) std::atomic<std::uint64_t> taken{0};
    std::mutex mutex;
    std::condition_variable wake;
  };

  // Workers are started on first need and live as long as the process (the team is
  // never destroyed: no join at exit, when a worker may be asleep on the condition).
  // A new worker waits for the jobs after the last one posted. False when the system
  // refuses a thread.
  bool grow(int workers) noexcept {
    try {
      if (started_ >= workers) return true;
      slots_.reserve(static_cast<std::size_t>(workers));  // push_back below cannot throw
      while (started_ < workers) {
        const int index = started_;
        const std::uint64_t seen = jobs_;
        auto slot = std::make_unique<Slot>();
        Slot* const mine = slot.get();
        std::thread([this, index, seen, mine] { work(index, seen, *mine); }).detach();
        slots_.push_back(std::move(slot));
        ++started_;
      }
      return true;
    } catch (...) {
      return false;
    }
  }

  // Only a job that needs this worker restarts its spin: a worker left out of the jobs
  // (fewer chunks than workers) goes to sleep and stays asleep.
  void work(int index, std::uint64_t seen, Slot& slot) {
    int spins = 0;
    for (;;) {
      const std::uint64_t word = word_.load(std::memory_order_acquire);
      if ((word >> kCountBits) == seen) {
        if (spins < kSpinsBeforeSleep) {  // (no ++ past the bound: no overflow)
          ++spins;
          cpu_relax();
        } else {
          park(seen, slot);  // spins stays high: a job without this worker parks it again
        }
        continue;
      }
      seen = word >> kCountBits;
      const int chunk = index + 1;
      if (chunk < static_cast<int>(word & kCountMask) && take(slot, seen)) {
        t_in_chunk = true;
        try {
          fn_(ctx_, chunk);
        } catch (...) {  // carried to the caller (run()); the first one wins
          std::lock_guard<std::mutex> lock(error_mutex_);
          if (!worker_error_) worker_error_ = std::current_exception();
        }
        t_in_chunk = false;
        pending_.fetch_sub(1, std::memory_order_acq_rel);
        spins = 0;
      }
    }
  }

  // Claims chunk w + 1 of job `job` for the caller or worker w, whichever comes first:
  // true for exactly one of them. A worker that read the job's word late fails: the job
  // cannot end while its chunk is unclaimed, so a claim that succeeds is for the job in
  // progress (whose fn_ and ctx_ the claimer then reads).
  static bool take(Slot& slot, std::uint64_t job) {
    std::uint64_t last = slot.taken.load(std::memory_order_acquire);
    while (last < job)
      if (slot.taken.compare_exchange_weak(last, job, std::memory_order_acq_rel)) return true;
    return false;
  }

  // Sleeps until a job after `seen` is posted (run() wakes a sleeper only for a job that
  // needs it). asleep is raised before the word is read again (both seq_cst), and run()
  // posts the word before it reads asleep: one of the two sees the other, so a wake-up
  // is never lost.
  void park(std::uint64_t seen, Slot& slot) {
    std::unique_lock<std::mutex> lock(slot.mutex);
    slot.asleep.store(true, std::memory_order_seq_cst);
    slot.wake.wait(lock, [&] { return (word_.load(std::memory_order_seq_cst) >> kCountBits) != seen; });
    slot.asleep.store(false, std::memory_order_relaxed);
  }

  std::atomic<bool> busy_{false};
  std::atomic<std::uint64_t> word_{0};  // job number << kCountBits | chunk count
  std::atomic<int> pending_{0};         // chunks of the current job not yet done
  ChunkFn fn_ = nullptr;  // the current job, published by word_
  void* ctx_ = nullptr;
  std::uint64_t jobs_ = 0;  // jobs posted (only the team's holder writes)
  int started_ = 0;         // workers started (only the team's holder writes)
  std::vector<std::unique_ptr<Slot>> slots_;  // worker w's is slots_[w] (holder writes)
  std::mutex error_mutex_;
  std::exception_ptr worker_error_;  // a chunk's exception on a worker, for run() to throw
};

ThreadTeam& team() {
  static ThreadTeam* const instance = new ThreadTeam;  // never destroyed (see grow())
  return *instance;
}

}  // namespace

void run_chunks(int chunks, ChunkFn fn, void* ctx) {
  // Serially: inside a chunk (no nesting), in a forked child (the workers are not there),
  // or while another thread holds the team. Same chunks, so the same results.
  if (chunks <= 1) {  // (the team would run chunk 0 of 0 chunks, then wait forever)
    if (chunks == 1) fn(ctx, 0);
    return;
  }
  if (t_in_chunk || in_forked_child() || !team().run(chunks, fn, ctx))
    for (int k = 0; k < chunks; ++k) fn(ctx, k);
}

}  // namespace bnfast
