#pragma once
#include "procpool/detail/require_cxx20.hpp"

#include <cstdint>      // std::uint8_t
#include <string_view>  // to_string

namespace procpool {

// Which rule of the protocol a worker broke when the pool killed it for that
// (PoolEvent::violation on its WorkerExited event). The event's message says the details.
enum class ProtocolViolation : std::uint8_t {
  None,             // not killed for breaking the protocol
  BadFrame,         // a frame that does not decode, or one a worker may not send (then)
  HandlerMismatch,  // announced other handlers than the pool's other workers
  RingCorruption,   // impossible ring positions or records in the shared ring
  BadAnswer,        // an answer for a task not on board, or one malformed for its task
  OversizedResult,  // a result above max_payload
  ControlBlockLie,  // an impossible heartbeat in the control block
  DoorbellFlood,    // far more doorbell rings than its ring traffic explains
};

constexpr std::string_view to_string(ProtocolViolation violation) noexcept {
  switch (violation) {
    case ProtocolViolation::None:
      return "none";
    case ProtocolViolation::BadFrame:
      return "bad_frame";
    case ProtocolViolation::HandlerMismatch:
      return "handler_mismatch";
    case ProtocolViolation::RingCorruption:
      return "ring_corruption";
    case ProtocolViolation::BadAnswer:
      return "bad_answer";
    case ProtocolViolation::OversizedResult:
      return "oversized_result";
    case ProtocolViolation::ControlBlockLie:
      return "control_block_lie";
    case ProtocolViolation::DoorbellFlood:
      return "doorbell_flood";
  }
  return "unknown";
}

}  // namespace procpool
