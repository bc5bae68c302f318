// How the dense products split C's rows over the kernels' threads (matmul_acc_threaded,
// and the Dual products of nn/ops/product.cpp, which run a whole Dual product in one
// parallel region). Kept out of linalg/matmul.hpp, which the per-instruction-set
// variants include: inline code there would be compiled once per instruction set.
#pragma once

#include <algorithm>
#include <cstdint>

#include "runtime/parallel.hpp"

namespace bnfast {

// The kernel's register block of rows: chunks hold whole blocks.
inline constexpr std::int64_t kProductRowBlock = 4;

// How many chunks a product of `work` multiply-adds with m rows of C splits into (1
// below every grain: the split's set-up would cost more than it saves).
inline int product_chunks(std::int64_t m, std::int64_t work) {
  const std::int64_t blocks = (m + kProductRowBlock - 1) / kProductRowBlock;
  return work < kStepGrain ? 1 : chunk_count(work, blocks);
}

// f(chunk, r0, r1) for C's rows [r0, r1) split into `chunks` ranges of whole 4-row blocks
// (every range but the last runs whole register blocks), over the
// kernels' threads. Each entry of a product sums its terms in order p whatever its rows'
// range, so the split changes no bit.
template <class F>
void split_product_rows(std::int64_t m, int chunks, F&& f) {
  const std::int64_t blocks = (m + kProductRowBlock - 1) / kProductRowBlock;
  parallel_chunks(chunks, [&](int c) {
    const std::int64_t r0 = std::min(m, chunk_begin(blocks, chunks, c) * kProductRowBlock);
    const std::int64_t r1 = std::min(m, chunk_begin(blocks, chunks, c + 1) * kProductRowBlock);
    if (r1 > r0) f(c, r0, r1);
  });
}

}  // namespace bnfast
