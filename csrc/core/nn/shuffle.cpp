#include "nn/shuffle.hpp"

#include <numeric>
#include <utility>

namespace bnfast {

using i64 = std::int64_t;

EpochShuffler::EpochShuffler(i64 m, std::uint64_t seed) : gen_(seed), perm_(m) {}

const std::vector<i64>& EpochShuffler::next_epoch() {
  std::iota(perm_.begin(), perm_.end(), i64{0});
  for (i64 i = static_cast<i64>(perm_.size()) - 1; i > 0; --i) {
    const auto j = static_cast<i64>(gen_.next() % static_cast<std::uint64_t>(i + 1));
    std::swap(perm_[i], perm_[j]);
  }
  return perm_;
}

}  // namespace bnfast
