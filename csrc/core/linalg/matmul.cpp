#include "linalg/matmul.hpp"

#include "runtime/dispatch.hpp"

namespace bnfast {

MatmulAcc matmul_acc() {
  static const MatmulAcc entry = select_isa(baseline::matmul_entry(), avx2::matmul_entry());
  return entry;
}

}  // namespace bnfast
