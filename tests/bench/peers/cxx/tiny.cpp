// procpool-peer-tiny (and -static): the smallest useful process. Without arguments it writes one
// byte to stdout (the S1 spawn floor); with an argument N it prints N + 1 and a newline (the M1
// peers run it once per line under xargs -P2 and GNU parallel). Only raw system calls, no stdio,
// so start-up is as cheap as a C++ program's can be.
#include <unistd.h>

#include <cstdint>

int main(int argc, char** argv) {
  if (argc < 2) return write(STDOUT_FILENO, "x", 1) == 1 ? 0 : 1;
  std::uint64_t n = 0;
  for (const char* p = argv[1]; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return 2;
    n = n * 10 + static_cast<std::uint64_t>(*p - '0');
  }
  ++n;
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  *--p = '\n';
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  const auto len = static_cast<std::size_t>(end - p);
  return write(STDOUT_FILENO, p, len) == static_cast<ssize_t>(len) ? 0 : 1;
}
