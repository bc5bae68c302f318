#include "runtime/parallel.hpp"

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace bnfast {
namespace {
int default_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}
std::atomic<int> g_threads{default_threads()};

std::atomic<bool> g_forked_child{false};
#if !defined(_WIN32)
void mark_forked_child() { g_forked_child.store(true); }
// Registered once, when the library is loaded.
const bool g_fork_handler = [] {
  pthread_atfork(nullptr, nullptr, &mark_forked_child);
  return true;
}();
#endif
}  // namespace

bool in_forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) { g_threads.store(n, std::memory_order_relaxed); }

}  // namespace bnfast
