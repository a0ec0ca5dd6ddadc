#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <stdexcept>  // std::runtime_error
#include <string>
#include <string_view>  // std::string_view

namespace procpool {

// Base of every exception procpool throws at an API boundary. Hot paths return small enums
// instead; this is for set-up, configuration and results handed to the user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<what>: <strerror(error)>"). For set-up paths only (segment creation, mapping).
// Callers save errno into `error` before building `what`: building a string may clobber errno.
[[noreturn]] void throw_errno(int error, std::string_view what);

}  // namespace procpool
