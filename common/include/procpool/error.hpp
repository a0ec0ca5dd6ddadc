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

// An Error caused by a failed system call, with its errno (code()), so that callers can tell a
// transient failure (EMFILE, EAGAIN, ENOMEM) from a permanent one (ENOENT, EACCES) without
// matching text.
class SystemError : public Error {
 public:
  SystemError(int code, const std::string& message) : Error(message), code_(code) {}
  ~SystemError() override;  // out of line: one vtable and type_info, in error.cpp
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// Throws SystemError(error, "<what>: <strerror(error)>"). For set-up paths only (segment creation,
// mapping). Callers save errno into `error` before building `what`: building a string may clobber
// errno.
[[noreturn]] void throw_errno(int error, std::string_view what);

}  // namespace procpool
