// std::vector with cache-line (64-byte) aligned storage, for the work arrays of a
// training step. A product's vector loads of B rows cross a cache line every other load
// when B starts 16 bytes into a line (what malloc gives), which costs the register-
// blocked kernel ~15% at width 64; aligned rows never split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace bnfast {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLine}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kCacheLine}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// p[0..n) to be read as product operands: p itself when it starts on a cache line or is
// too small to matter, else a copy in `copy` (a NumPy array is 16-byte aligned; the
// copy costs a small fraction of the products that read it).
template <class T>
const T* cache_line_aligned(const T* p, std::int64_t n, AlignedVector<T>& copy) {
  constexpr std::int64_t kWorthCopying = 1024;
  if (reinterpret_cast<std::uintptr_t>(p) % kCacheLine == 0 || n < kWorthCopying) return p;
  copy.assign(p, p + n);
  return copy.data();
}

}  // namespace bnfast
