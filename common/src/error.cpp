#include "procpool/error.hpp"

#include <cstring>  // std::strerror

namespace procpool {

SystemError::~SystemError() = default;

void throw_errno(int error, std::string_view what) {
  throw SystemError(error, std::string(what) + ": " + std::strerror(error));
}

}  // namespace procpool
