// Errors the engine reports. The runtime never exits or aborts: it throws ivl::Error,
// and the N-API layer turns each into an InternVLError with the same stable code.
#pragma once
#include <stdexcept>
#include <string>

namespace ivl {

enum class ErrorCode {
  Config,           // ERR_CONFIG: config.json missing fields or inconsistent
  Checkpoint,       // ERR_CHECKPOINT: safetensors missing/malformed/mismatched tensors
  Image,            // ERR_IMAGE
  ContextOverflow,  // ERR_CONTEXT_OVERFLOW
  InvalidArg,       // ERR_INVALID_ARG
  OutOfMemory,      // ERR_OOM
  Cuda,             // ERR_CUDA
  Aborted,          // ERR_ABORTED
  Disposed,         // ERR_DISPOSED
  Internal,         // ERR_INTERNAL: a bug in the engine
};

inline const char* errorCodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::Config: return "ERR_CONFIG";
    case ErrorCode::Checkpoint: return "ERR_CHECKPOINT";
    case ErrorCode::Image: return "ERR_IMAGE";
    case ErrorCode::ContextOverflow: return "ERR_CONTEXT_OVERFLOW";
    case ErrorCode::InvalidArg: return "ERR_INVALID_ARG";
    case ErrorCode::OutOfMemory: return "ERR_OOM";
    case ErrorCode::Cuda: return "ERR_CUDA";
    case ErrorCode::Aborted: return "ERR_ABORTED";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    case ErrorCode::Internal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* codeName() const { return errorCodeName(code_); }

 private:
  ErrorCode code_;
};

// Throws ivl::Error(code, message) unless cond holds. For argument and data checks
// whose failure is the caller's input, not a bug.
inline void require(bool cond, ErrorCode code, const std::string& message) {
  if (!cond) throw Error(code, message);
}

}  // namespace ivl
