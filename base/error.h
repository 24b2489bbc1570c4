// Typed exceptions. Every error carries the context a person needs to act on it: the op and
// its shapes, the file and line, the layer, the path. Nothing in mmfuse aborts the process.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mmfuse {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An op was called with arguments it cannot accept (shapes, dtypes, devices, options).
struct OpError : Error { using Error::Error; };
// A file could not be read or written, or its content is not what was expected.
struct IOError : Error { using Error::Error; };
// A device (CUDA) call failed, or a device is missing.
struct DeviceError : Error { using Error::Error; };
// A model or solver definition is wrong: a prototxt syntax error ("file:line:col: message"),
// an unknown field or layer type, or a net that cannot be built (arity, shapes, sharing).
struct ParseError : Error { using Error::Error; };

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace mmfuse

// MMF_CHECK(cond, ErrorType, message parts...) throws ErrorType(message) when cond is false.
#define MMF_CHECK(cond, Type, ...)                                   \
  do {                                                               \
    if (!(cond)) throw Type(::mmfuse::detail::concat(__VA_ARGS__));  \
  } while (0)
