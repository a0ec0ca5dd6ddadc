// The rogue worker's bad frames: one well-formed ring record holding a frame the supervisor must
// refuse (bad_frame), and result fragments of its task without end (fragment_bomb).

#include <unistd.h>  // getpid

#include <chrono>       // deadlines
#include <climits>      // UINT32_MAX
#include <cstdint>      // fixed-width integers
#include <cstring>      // std::memcpy
#include <iterator>     // std::size
#include <random>       // std::mt19937_64
#include <span>         // std::span
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include "procpool/chunk_format.hpp"   // ChunkWriter
#include "procpool/segment.hpp"        // Segment
#include "procpool/wait_strategy.hpp"  // wait_until
#include "procpool/wire_format.hpp"    // FrameHeader, write_frame
#include "rogue_attacks.hpp"
#include "rogue_channel.hpp"  // Channel, park, fill_random, bytes_of

namespace rogue {

using procpool::FrameHeader;
using procpool::FrameType;

namespace {

// A frame as raw record bytes: `header` exactly as given (payload_size included), then `payload`.
std::string raw_frame(const FrameHeader& header, std::string_view payload) {
  std::string out(reinterpret_cast<const char*>(&header), sizeof header);
  out.append(payload);
  return out;
}

// A well-formed frame's record bytes.
std::string frame(FrameType type, std::uint64_t task_id, std::string_view payload,
                  std::uint16_t flags = 0) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  header.flags = flags;
  header.payload_size = static_cast<std::uint32_t>(payload.size());
  return raw_frame(header, payload);
}

}  // namespace

[[noreturn]] void bad_frame(Channel& channel, const std::string& kind, std::uint64_t task_id,
                            std::mt19937_64& rng) {
  channel.settle();
  const std::string payload = "rogue";
  FrameHeader header;
  header.type = FrameType::kResult;
  header.task_id = task_id;
  header.payload_size = static_cast<std::uint32_t>(payload.size());
  std::vector<std::string> records;
  if (kind == "version") {
    header.version = static_cast<std::uint8_t>(procpool::kWireVersion + 1 + rng() % 254);
    records.push_back(raw_frame(header, payload));
  } else if (kind == "type") {
    const std::uint8_t types[] = {0, 10, 11, 77, 255};
    header.type = static_cast<FrameType>(types[rng() % std::size(types)]);
    records.push_back(raw_frame(header, payload));
  } else if (kind == "flags") {
    header.flags = static_cast<std::uint16_t>(4 + rng() % 0xFFFC);  // bits above the known ones
    records.push_back(raw_frame(header, payload));
  } else if (kind == "length") {
    header.payload_size =
        static_cast<std::uint32_t>(payload.size() + 1 + rng() % (UINT32_MAX - payload.size()));
    records.push_back(raw_frame(header, payload));
  } else if (kind == "short") {
    records.push_back(raw_frame(header, payload).substr(0, rng() % sizeof(FrameHeader)));
  } else if (kind == "stranger") {
    const std::uint64_t stranger =
        rng() % 2 == 0 ? task_id + ((1 + rng() % 1000) << 32) : (rng() | 1);
    records.push_back(frame(FrameType::kResult, stranger, payload));
  } else if (kind == "progress_stranger") {  // a report for a task the worker does not hold
    const std::uint64_t stranger =
        rng() % 2 == 0 ? task_id + ((1 + rng() % 1000) << 32) : (rng() | 1);
    records.push_back(frame(FrameType::kProgress, stranger, payload));
  } else if (kind == "duplicate") {
    records.push_back(frame(FrameType::kResult, task_id, "first " + std::to_string(::getpid())));
    records.push_back(frame(FrameType::kResult, task_id, "second"));
  } else if (kind == "worker_type") {
    const FrameType types[] = {FrameType::kTask, FrameType::kCancel, FrameType::kShutdown,
                               FrameType::kInit};
    records.push_back(frame(types[rng() % std::size(types)], task_id, payload));
  } else if (kind == "ready") {
    records.push_back(frame(FrameType::kReady, 0, procpool::encode_handler_names({"echo"})));
  } else if (kind == "error_body") {
    std::string body;
    std::uint16_t flags = 0;
    switch (rng() % 5) {
      case 0:  // shorter than the error code
        body.assign(rng() % 4, 'e');
        break;
      case 1:  // code 0
        body.assign(4, '\0');
        break;
      case 2: {  // a code above the known ones
        const auto code =
            static_cast<std::uint32_t>(procpool::kMaxWorkerErrorCode + 1 + rng() % 1000);
        body.assign(reinterpret_cast<const char*>(&code), sizeof code);
        body += "message";
        break;
      }
      case 3:  // the detailed form, shorter than its head
        flags = procpool::kFrameErrorDetail;
        body.assign(rng() % procpool::kErrorDetailHead, 'e');
        break;
      case 4: {  // the detailed form, its type running past the payload
        flags = procpool::kFrameErrorDetail;
        procpool::ErrorDetail detail;
        detail.code = procpool::WorkerErrorCode::kHandlerFailed;
        detail.type = "std::runtime_error";
        body = procpool::encode_error_detail(detail);
        const auto past = static_cast<std::uint32_t>(detail.type.size() + 1 + rng() % 200);
        std::memcpy(body.data() + 4, &past, sizeof past);
        break;
      }
    }
    records.push_back(frame(FrameType::kError, task_id, body, flags));
  } else if (kind == "chunk_flag") {  // a chunked answer to a plain task
    std::string body;
    procpool::ChunkWriter writer(body);
    writer.begin();
    writer.add_result(0, payload);
    records.push_back(frame(FrameType::kResult, task_id, body, procpool::kFrameChunk));
  } else if (kind == "chunk_body") {  // run inside a chunk of one item: a malformed answer
    std::string body;
    procpool::ChunkWriter writer(body);
    writer.begin();
    switch (rng() % 5) {
      case 0:  // no items at all
        break;
      case 1:  // two answers for one item
        writer.add_result(0, "a");
        writer.add_result(0, "b");
        break;
      case 2:  // an unknown code
        writer.add_result(
            static_cast<std::uint32_t>(procpool::kMaxWorkerErrorCode + 1 + rng() % 1000), "c");
        break;
      case 3:  // a length past the end
        writer.add_result(0, "dddd");
        body.resize(body.size() - 1 - rng() % 4);
        break;
      case 4:  // bytes left over
        writer.add_result(0, "e");
        body += "trailing";
        break;
    }
    records.push_back(frame(FrameType::kResult, task_id, body, procpool::kFrameChunk));
  } else if (kind == "interleave") {
    records.push_back(frame(FrameType::kResult, task_id, payload, procpool::kFrameMore));
    records.push_back(frame(FrameType::kResult, task_id + (std::uint64_t{1} << 32), payload));
  } else {
    throw std::runtime_error("bad_frame: unknown kind \"" + kind + "\"");
  }
  for (const std::string& record : records) {
    if (!channel.publish_record(bytes_of(record))) {
      throw std::runtime_error("bad_frame: no room in the result ring");
    }
  }
  park();
}

[[noreturn]] void fragment_bomb(Channel& channel, std::uint64_t task_id, std::mt19937_64& rng) {
  channel.settle();
  procpool::RingWriter writer = channel.segment().worker_writer();
  std::string chunk(writer.max_payload() - sizeof(FrameHeader), '\0');
  fill_random(std::as_writable_bytes(std::span<char>(chunk.data(), chunk.size())), rng);
  FrameHeader header;
  header.type = FrameType::kResult;
  header.task_id = task_id;
  header.flags = procpool::kFrameMore;
  const auto until = Clock::now() + kParkLimit;
  const auto needed = static_cast<std::uint32_t>(sizeof(FrameHeader) + chunk.size());
  while (Clock::now() < until) {
    const procpool::WriteStatus status = procpool::write_frame(writer, header, bytes_of(chunk));
    if (status == procpool::WriteStatus::kOk) {
      writer.publish();
      channel.ring();
    } else if (status == procpool::WriteStatus::kFull) {
      procpool::wait_until(
          channel.results().writable, [&] { return writer.can_reserve(needed); },
          procpool::WaitPolicy{}, 100ms);
    } else {
      break;  // the supervisor's read position is impossible: it is gone or so are we
    }
  }
  park();
}

}  // namespace rogue
