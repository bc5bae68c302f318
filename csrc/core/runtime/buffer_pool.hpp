// A small cache of large output buffers. A fresh 64 MB array costs as much in page
// faults (the kernel zeroing new pages) as the whole BN forward pass; handing out a
// recently freed buffer whose pages are still mapped avoids that. Bounded: at most
// kMaxBuffers buffers and kMaxBytes bytes are kept; anything else is freed at once.
#pragma once

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace bnfast {

class BufferPool {
 public:
  static constexpr std::size_t kMinBytes = std::size_t{1} << 20;    // smaller: not pooled
  static constexpr std::size_t kMaxBytes = std::size_t{512} << 20;  // cached at most
  static constexpr std::size_t kMaxBuffers = 8;

  static BufferPool& instance();

  // A buffer of exactly `bytes` (>= kMinBytes), 64-byte aligned, contents undefined.
  // Throws std::bad_alloc when memory is exhausted.
  void* acquire(std::size_t bytes);
  // Gives back a buffer from acquire(bytes); it is cached or freed.
  void release(void* p, std::size_t bytes);
  // Frees every cached buffer.
  void clear();
  std::size_t cached_bytes();

  ~BufferPool();

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::size_t, void*>> free_;  // (bytes, buffer), newest last
  std::size_t cached_ = 0;
};

}  // namespace bnfast
