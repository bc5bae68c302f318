#include "runtime/buffer_pool.hpp"

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bnfast {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

void* allocate(std::size_t bytes) {
  // Large buffers are aligned to 2 MB and marked for transparent huge pages: fewer,
  // cheaper page faults on first touch.
  const std::size_t align = bytes >= 2 * kHugePage ? kHugePage : 64;
  const std::size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

}  // namespace

BufferPool& BufferPool::instance() {
  // Never destroyed: arrays freed during interpreter shutdown may still call release().
  static BufferPool* pool = new BufferPool();
  return *pool;
}

void* BufferPool::acquire(std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = free_.size(); i-- > 0;) {
      if (free_[i].first == bytes) {
        void* p = free_[i].second;
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        cached_ -= bytes;
        return p;
      }
    }
  }
  return allocate(bytes);
}

void BufferPool::release(void* p, std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_ + bytes <= kMaxBytes && free_.size() < kMaxBuffers) {
      free_.emplace_back(bytes, p);
      cached_ += bytes;
      return;
    }
  }
  std::free(p);
}

void BufferPool::clear() {
  std::vector<std::pair<std::size_t, void*>> drop;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    drop.swap(free_);
    cached_ = 0;
  }
  for (auto& entry : drop) std::free(entry.second);
}

std::size_t BufferPool::cached_bytes() {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

BufferPool::~BufferPool() { clear(); }

}  // namespace bnfast
