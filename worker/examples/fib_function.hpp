#pragma once

// The docs/workloads.md C1 function: naive recursive Fibonacci. One definition for the fib worker
// and for the C1 serial baseline (tests/bench/pool_bench.cpp), so that both time the same
// machine code: noinline, and called with a number the compiler cannot see (the worker parses
// it from the payload; the baseline reads it from a volatile).

#include <cstdint>  // std::uint64_t

namespace procpool::examples {

[[gnu::noinline, gnu::aligned(64)]] inline std::uint64_t fib(std::uint64_t n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

}  // namespace procpool::examples
