// std::vector with cache-line (64-byte) aligned storage, for the work arrays of a
// training step. A product's vector loads of B rows cross a cache line every other load
// when B starts 16 bytes into a line (what malloc gives), which costs the register-
// blocked kernel ~15% at width 64; aligned rows never split.
#pragma once

#include <cstddef>
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

}  // namespace bnfast
