// The epoch shuffles of mini-batch SGD.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/splitmix.hpp"

namespace bnfast {

// The epoch permutations of mini-batch SGD: SplitMix64 seeded with `seed`, each epoch a
// Fisher-Yates shuffle of 0..m-1 drawing j = next() % (i + 1) for i = m-1 down to 1.
// bnfast.reference implements the same sequence, so both loops see the same batches.
class EpochShuffler {
 public:
  EpochShuffler(std::int64_t m, std::uint64_t seed);
  const std::vector<std::int64_t>& next_epoch();

 private:
  SplitMix64 gen_;
  std::vector<std::int64_t> perm_;
};

}  // namespace bnfast
