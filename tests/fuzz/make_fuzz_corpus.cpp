// Writes the seed corpus of the fuzz targets: a handful of valid and edge-case inputs each, made
// with the real RingWriter and wire-format encoders so that they stay in step with the code.
// The output is checked in under tests/fuzz/corpus/; regenerate it after a format change with
//     build/fuzz/tests/fuzz/procpool_fuzz_corpus tests/fuzz/corpus
// (files of the same name are overwritten, others are left alone).

#include <cstddef>       // std::byte, std::size_t
#include <cstdint>       // fixed-width integers
#include <cstdio>        // std::fprintf
#include <filesystem>    // std::filesystem
#include <fstream>       // std::ofstream
#include <span>          // std::span
#include <stdexcept>     // std::logic_error
#include <string>        // std::string
#include <string_view>   // std::string_view
#include <system_error>  // std::error_code
#include <vector>        // std::vector

#include "fuzz_bytes.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/detail/record_header.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/ring_reader.hpp"
#include "procpool/ring_writer.hpp"
#include "procpool/wire_format.hpp"
#include "ring_fuzz_input.hpp"

namespace procpool::fuzz {
namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw fs::filesystem_error("cannot write seed", path, std::error_code());
}

// --- ring_reader_fuzz -----------------------------------------------------------------------

// A ring a real producer filled, plus the script that follows it (ring_fuzz_input.hpp).
class RingSeed {
 public:
  // `size_code` picks the capacity as the target does.
  explicit RingSeed(std::uint8_t size_code)
      : size_code_(size_code), bytes_(ring_capacity_for(size_code)) {}

  RingData& data() noexcept { return ring_; }
  std::span<std::byte> bytes() noexcept { return bytes_; }
  RingWriter writer() noexcept { return {ring_, bytes_}; }
  RingReader reader() noexcept { return {ring_, bytes_}; }

  // One kTask frame with a `size`-byte payload; publishes it.
  void write_task(RingWriter& writer, std::uint64_t task_id, std::size_t size) {
    FrameHeader header;
    header.type = FrameType::kTask;
    header.task_id = task_id;
    header.attempt = 1;
    const std::string payload(size, static_cast<char>('a' + task_id % 26));
    if (write_frame(writer, header, as_bytes(payload)) != WriteStatus::kOk) {
      throw std::logic_error("seed frame does not fit its ring");
    }
    writer.publish();
  }

  void set_flags(std::uint8_t flags) noexcept { flags_ = flags; }
  ByteSink& ops() noexcept { return ops_; }
  void op(RingOp op) { ops_.u8(static_cast<std::uint8_t>(op)); }

  std::vector<std::byte> serialize() const {
    ByteSink out;
    out.u8(size_code_);
    out.u8(flags_);
    const std::uint64_t read_pos = ring_.read_pos.load();
    out.u64(read_pos);
    out.u64(ring_.write_pos.load() - read_pos);
    out.bytes(bytes_);
    out.bytes(ops_.data());
    return out.data();
  }

 private:
  std::uint8_t size_code_;
  std::uint8_t flags_ = 0;
  RingData ring_;
  std::vector<std::byte> bytes_;
  ByteSink ops_;
};

void write_ring_seeds(const fs::path& dir) {
  const auto save = [&](std::string_view name, const RingSeed& seed) {
    write_file(dir / name, seed.serialize());
  };
  {
    RingSeed seed(0);  // 64 bytes, nothing published
    seed.op(RingOp::kDrain);
    save("empty", seed);
  }
  {
    RingSeed seed(2);  // 256 bytes
    RingWriter writer = seed.writer();
    for (std::uint64_t id = 1; id <= 3; ++id) seed.write_task(writer, id, 10 * id);
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kRelease);
    save("three-frames", seed);
  }
  {
    // Two records read and released, then one that does not fit before the end: padding at
    // offset 176, the record at 0.
    RingSeed seed(2);
    RingWriter writer = seed.writer();
    RingReader reader = seed.reader();
    seed.write_task(writer, 1, 56);
    seed.write_task(writer, 2, 56);
    std::span<const std::byte> record;
    while (reader.try_read(record) == ReadStatus::kOk) {
    }
    reader.release();
    seed.write_task(writer, 3, 56);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRelease);
    save("wrapped-with-padding", seed);
  }
  {
    // Four records written, two published; the producer publishes the rest mid-script.
    RingSeed seed(3);  // 512 bytes
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 40);
    seed.write_task(writer, 2, 40);
    const std::uint64_t half = seed.data().write_pos.load();
    seed.write_task(writer, 3, 40);
    seed.write_task(writer, 4, 40);
    const std::uint64_t all = seed.data().write_pos.load();
    seed.data().write_pos.store(half);
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kReleaseTo);
    seed.ops().u8(0);
    seed.op(RingOp::kMoveWrite);
    seed.ops().u32(static_cast<std::uint32_t>(all - half));
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kRelease);
    save("publish-mid-script", seed);
  }
  {
    RingSeed seed(1);  // 128 bytes; release() must wake the producer
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 8);
    seed.write_task(writer, 2, 8);
    seed.set_flags(kProducerWaits);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRelease);
    seed.op(RingOp::kPoll);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRelease);
    seed.op(RingOp::kPoll);
    save("producer-waits", seed);
  }
  {
    RingSeed seed(2);
    RingWriter writer = seed.writer();
    for (std::uint64_t id = 1; id <= 4; ++id) seed.write_task(writer, id, 16);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kReleaseTo);
    seed.ops().u8(1);  // the position after the second record
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kReleaseTo);
    seed.ops().u8(0x80);  // an arbitrary position: ignored
    seed.ops().u64(0xFFFF'FFFF'FFFF'FFF8);
    seed.op(RingOp::kRelease);
    save("release-to-middle", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    const std::uint32_t max = ring_max_payload(seed.bytes().size());
    seed.write_task(writer, 1, max - sizeof(FrameHeader));  // the largest record there is
    seed.op(RingOp::kDrain);
    save("max-payload", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 16);
    seed.op(RingOp::kScribble);  // the tag of the first header becomes garbage
    seed.ops().u16(4);
    seed.ops().u64(0xDEAD'BEEF'DEAD'BEEF);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRead);
    save("bad-tag", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 16);
    seed.op(RingOp::kWriteData);
    seed.ops().u16(0);
    seed.ops().u32(0xFFFF'FFF0);
    seed.op(RingOp::kRead);
    save("oversized-record", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 16);
    seed.op(RingOp::kWriteData);  // longer than what was published
    seed.ops().u16(0);
    seed.ops().u32(48);
    seed.op(RingOp::kRead);
    save("record-past-published", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 16);
    detail::store_record_header(seed.bytes().data(), 0, kRecordTagPadding);  // ends too early
    seed.op(RingOp::kRead);
    seed.op(RingOp::kWritePadding);  // repaired: the fault must stay
    seed.ops().u16(0);
    seed.op(RingOp::kRead);
    save("short-padding", seed);
  }
  {
    RingSeed seed(0);
    seed.op(RingOp::kMoveWrite);  // more than one ring ahead
    seed.ops().u32(72);
    seed.op(RingOp::kPoll);
    seed.op(RingOp::kRead);
    save("write-pos-overrun", seed);
  }
  {
    RingSeed seed(1);
    RingWriter writer = seed.writer();
    seed.write_task(writer, 1, 8);
    seed.write_task(writer, 2, 8);
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kMoveWrite);  // backwards
    seed.ops().u32(static_cast<std::uint32_t>(-8));
    seed.op(RingOp::kRead);
    save("write-pos-regressed", seed);
  }
  {
    RingSeed seed(0);
    seed.data().read_pos.store(3);
    seed.data().write_pos.store(3);
    seed.op(RingOp::kRead);
    save("read-pos-misaligned", seed);
  }
  {
    // A ring that has gone round many times: positions far from zero, a wrap in the middle.
    RingSeed seed(4);  // 1024 bytes
    RingWriter writer = seed.writer();
    RingReader reader = seed.reader();
    std::span<const std::byte> record;
    for (std::uint64_t id = 1; id <= 40; ++id) {
      seed.write_task(writer, id, 24 + (id * 37) % 200);
      while (reader.try_read(record) == ReadStatus::kOk) {
      }
      reader.release();
    }
    for (std::uint64_t id = 41; id <= 44; ++id) seed.write_task(writer, id, 100 + id);
    seed.op(RingOp::kRead);
    seed.op(RingOp::kRelease);
    seed.op(RingOp::kDrain);
    seed.op(RingOp::kRelease);
    save("many-laps", seed);
  }
}

// --- frame_decoder_fuzz ---------------------------------------------------------------------

// The bytes of one record as write_frame lays it out (through a ring, as the runtime does).
std::vector<std::byte> frame(FrameHeader header, std::string_view payload) {
  RingData ring;
  std::vector<std::byte> bytes(4096);
  RingWriter writer(ring, bytes);
  if (write_frame(writer, header, as_bytes(payload)) != WriteStatus::kOk) {
    throw std::logic_error("seed frame does not fit its ring");
  }
  writer.publish();
  RingReader reader(ring, bytes);
  std::span<const std::byte> record;
  reader.try_read(record);
  return {record.begin(), record.end()};
}

FrameHeader header_of(FrameType type, std::uint64_t task_id = 0) {
  FrameHeader header;
  header.type = type;
  header.task_id = task_id;
  return header;
}

void write_frame_seeds(const fs::path& dir) {
  const auto save = [&](std::string_view name, std::span<const std::byte> bytes) {
    write_file(dir / name, bytes);
  };
  save("ready", frame(header_of(FrameType::kReady), encode_handler_names({"fib", "echo"})));
  FrameHeader task = header_of(FrameType::kTask, 42);
  task.handler_id = 1;
  task.attempt = 2;
  save("task", frame(task, "30"));
  save("result", frame(header_of(FrameType::kResult, 42), "832040"));
  FrameHeader fragment = header_of(FrameType::kResult, 43);
  fragment.flags = kFrameMore;
  save("result-fragment", frame(fragment, "first part"));
  save("error", frame(header_of(FrameType::kError, 42),
                      encode_error(WorkerErrorCode::kHandlerFailed, "boom")));
  ErrorDetail detail;
  detail.code = WorkerErrorCode::kHandlerFailed;
  detail.type = "std::invalid_argument";
  detail.has_code = true;
  detail.user_code = -42;
  detail.message = "bad number";
  FrameHeader detailed = header_of(FrameType::kError, 42);
  detailed.flags = kFrameErrorDetail;
  save("error-detail", frame(detailed, encode_error_detail(detail)));
  FrameHeader progress = header_of(FrameType::kProgress, 42);
  save("progress", frame(progress, "3/10"));
  progress.flags = kFrameMore;
  save("progress-fragment", frame(progress, "first part of a report"));
  save("cancel", frame(header_of(FrameType::kCancel, 42), ""));
  save("shutdown", frame(header_of(FrameType::kShutdown), ""));
  save("init", frame(header_of(FrameType::kInit), encode_init(2 << 20, "worker data")));
  std::string chunk;
  ChunkWriter items(chunk);
  items.begin();
  items.add("1");
  items.add("");
  items.add("30");
  FrameHeader chunk_task = task;
  chunk_task.flags = kFrameChunk;
  save("chunk-task", frame(chunk_task, chunk));
  save("chunk-items", as_bytes(chunk));
  std::string answers;
  ChunkWriter results(answers);
  results.begin();
  results.add_result(0, "2");
  results.add_result(static_cast<std::uint32_t>(WorkerErrorCode::kHandlerFailed), "bad input");
  results.add_result(0, "832040");
  FrameHeader chunk_result = header_of(FrameType::kResult, 42);
  chunk_result.flags = kFrameChunk;
  save("chunk-result", frame(chunk_result, answers));
  save("chunk-results", as_bytes(answers));

  std::vector<std::byte> broken = frame(task, "30");
  save("too-short", std::span<const std::byte>(broken).first(sizeof(FrameHeader) - 1));
  broken[0] = std::byte{kWireVersion + 1};  // version
  save("bad-version", broken);
  broken = frame(task, "30");
  broken[1] = std::byte{kMaxFrameType + 1};  // type
  save("bad-type", broken);
  broken[1] = std::byte{6};  // the retired heartbeat type
  save("retired-type", broken);
  broken = frame(task, "30");
  broken[2] = std::byte{0x04};  // an unknown flag bit
  save("bad-flags", broken);
  broken = frame(task, "30");
  broken[16] = std::byte{3};  // payload_size one more than the record holds
  save("length-mismatch", broken);

  // Payloads alone, for the codecs the target also runs on the whole input.
  save("names-longest", as_bytes(encode_handler_names({std::string(kMaxHandlerName, 'n')})));
  const std::string empty_name("\0\0\0\0", 4);
  save("names-empty-name", as_bytes(empty_name));
  save("error-memory-limit",
       as_bytes(encode_error(WorkerErrorCode::kMemoryLimit, "std::bad_alloc")));
  save("init-no-data", as_bytes(encode_init(4096, "")));
  save("error-detail-alone", as_bytes(encode_error_detail(detail)));

  // Conversations for the reassembler (frame_decoder_fuzz.cpp's check_assembly): a fragmented
  // chunked task, then a single-frame result and a fragmented error.
  ByteSink conversation;
  conversation.u8(0);    // mode: single frames in place
  conversation.u16(64);  // max_payload
  const auto add = [&](const FrameHeader& header, std::string_view payload) {
    const std::vector<std::byte> record = frame(header, payload);
    conversation.u16(static_cast<std::uint16_t>(record.size()));
    conversation.bytes(record);
  };
  FrameHeader part = chunk_task;
  part.flags = kFrameChunk | kFrameMore;
  add(part, "first ");
  add(part, "second ");
  part.flags = kFrameChunk;
  add(part, "last");
  add(header_of(FrameType::kResult, 43), "832040");
  FrameHeader error_part = header_of(FrameType::kError, 44);
  error_part.flags = kFrameMore;
  const std::string error = encode_error(WorkerErrorCode::kHandlerFailed, "a long message");
  add(error_part, std::string_view(error).substr(0, 6));
  error_part.flags = 0;
  add(error_part, std::string_view(error).substr(6));
  save("assembly-fragments", conversation.data());
}

}  // namespace
}  // namespace procpool::fuzz

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR  (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root = argv[1];
    fs::create_directories(root / "ring_reader_fuzz");
    fs::create_directories(root / "frame_decoder_fuzz");
    procpool::fuzz::write_ring_seeds(root / "ring_reader_fuzz");
    procpool::fuzz::write_frame_seeds(root / "frame_decoder_fuzz");
  } catch (const std::exception& error) {
    std::fprintf(stderr, "procpool_fuzz_corpus: %s\n", error.what());
    return 1;
  }
  return 0;
}
