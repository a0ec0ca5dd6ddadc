#pragma once

#include <cstdint>      // counts
#include <string>       // a rewritten answer
#include <string_view>  // the answer

namespace procpool::detail {

// A chunked answer (chunk_format.hpp) as a worker sent it, checked whole before any item is
// delivered, since the worker is not trusted.

// Returns how many items failed, or -1 if the answer is malformed: not `items` entries, an
// unknown code, bytes left over, or with `detailed` (the frame's kFrameErrorDetail) a failed
// item whose bytes are not an ErrorDetail with the item's code. Sets `out_of_memory` if an item
// reported kMemoryLimit.
std::int64_t check_chunk_results(std::string_view body, std::uint32_t items, bool detailed,
                                 bool& out_of_memory) noexcept;

// A checked answer without kFrameErrorDetail (from a worker built before the SDK sent it), its
// failed items' messages put in the detailed form (no type, no code): what item_error reads.
std::string detailed_chunk_results(std::string_view body);

}  // namespace procpool::detail
