// libFuzzer target: a RingReader over a ring whose every byte a hostile producer wrote (the
// format is in ring_fuzz_input.hpp). The record area is allocated to its exact size, so ASan
// flags any read past it. Beyond "no out-of-bounds read", every result is checked against what
// the reader promises: a record lies inside the ring and the published bytes, behind a data
// header that announces exactly its size, no larger than max_payload(); kEmpty means the reader
// has caught up with write_pos; a fault is sticky; release() and release_to() store exactly the
// positions they should and report a waiting producer.

#include <algorithm>  // std::max
#include <cstddef>    // std::byte, std::size_t
#include <cstdint>    // fixed-width integers
#include <cstring>    // std::memcpy, std::memset
#include <memory>     // std::make_unique
#include <new>        // std::align_val_t
#include <span>       // std::span
#include <vector>     // std::vector

#include "fuzz_bytes.hpp"
#include "fuzz_check.hpp"
#include "procpool/detail/record_header.hpp"
#include "procpool/ring_data.hpp"
#include "procpool/ring_reader.hpp"
#include "ring_fuzz_input.hpp"

namespace procpool::fuzz {
namespace {

// The record area: exactly `capacity` bytes, cache-line aligned as in a segment.
class RecordArea {
 public:
  explicit RecordArea(std::size_t capacity)
      : capacity_(capacity),
        bytes_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{64}))) {}
  ~RecordArea() { ::operator delete (bytes_, std::align_val_t{64}); }
  RecordArea(const RecordArea&) = delete;
  RecordArea& operator=(const RecordArea&) = delete;

  std::span<std::byte> bytes() const noexcept { return {bytes_, capacity_}; }

 private:
  std::size_t capacity_;
  std::byte* bytes_;
};

// The consumer under test, with what the reader must have done so far tracked on the side.
class ReaderHarness {
 public:
  ReaderHarness(RingData& ring, std::span<std::byte> bytes, bool producer_waits)
      : ring_(ring),
        bytes_(bytes),
        reader_(ring, bytes),
        released_(ring.read_pos.load()),
        highest_write_(std::max(ring.read_pos.load(), ring.write_pos.load())),
        producer_waits_(producer_waits),
        faulted_(reader_.fault() != RingFault::kNone) {
    PROCPOOL_FUZZ_CHECK(reader_.capacity() == bytes.size());
    PROCPOOL_FUZZ_CHECK(reader_.max_payload() == ring_max_payload(bytes.size()));
  }

  ReadStatus read() {
    const std::uint64_t before = reader_.position();
    std::span<const std::byte> record;
    const ReadStatus status = reader_.try_read(record);
    switch (status) {
      case ReadStatus::kOk:
        PROCPOOL_FUZZ_CHECK(!faulted_);
        PROCPOOL_FUZZ_CHECK(reader_.fault() == RingFault::kNone);
        check_record(record, before);
        break;
      case ReadStatus::kEmpty:
        PROCPOOL_FUZZ_CHECK(!faulted_);
        PROCPOOL_FUZZ_CHECK(reader_.fault() == RingFault::kNone);
        // kEmpty only after re-reading write_pos and finding nothing beyond it.
        PROCPOOL_FUZZ_CHECK(reader_.position() == ring_.write_pos.load());
        break;
      case ReadStatus::kCorrupt:
        PROCPOOL_FUZZ_CHECK(reader_.fault() != RingFault::kNone);
        PROCPOOL_FUZZ_CHECK(!to_string(reader_.fault()).empty());
        PROCPOOL_FUZZ_CHECK(!faulted_ || reader_.position() == before);  // sticky: no progress
        faulted_ = true;
        break;
    }
    if (status != ReadStatus::kOk) check_padding_skipped(before);
    return status;
  }

  void drain() {
    // Bounded: each record moves position() forward by 8 bytes or more, and at most one ring
    // ahead of the last release.
    while (read() == ReadStatus::kOk) {
    }
  }

  void release() {
    const bool stores = reader_.position() != released_;
    const bool woke = reader_.release();
    if (stores) released_ = reader_.position();
    PROCPOOL_FUZZ_CHECK(woke == (stores && producer_waits_));
    PROCPOOL_FUZZ_CHECK(ring_.read_pos.load() == released_);
  }

  void release_to(std::uint64_t position) {
    const bool stores = position > released_ && position <= reader_.position();
    const bool woke = reader_.release_to(position);
    if (stores) released_ = position;
    PROCPOOL_FUZZ_CHECK(woke == (stores && producer_waits_));
    PROCPOOL_FUZZ_CHECK(ring_.read_pos.load() == released_);
  }

  // A position() seen after a record, for release_to().
  std::uint64_t seen_position(std::size_t pick) const {
    return seen_.empty() ? released_ : seen_[pick % seen_.size()];
  }

  void poll() {
    const bool ready = reader_.poll();
    if (faulted_) PROCPOOL_FUZZ_CHECK(ready);
    if (reader_.fault() != RingFault::kNone) {
      PROCPOOL_FUZZ_CHECK(ready);
      faulted_ = true;
    }
    if (!ready) PROCPOOL_FUZZ_CHECK(reader_.position() == ring_.write_pos.load());
  }

  void move_write(std::int32_t delta) {
    const std::uint64_t write = ring_.write_pos.load() + static_cast<std::uint64_t>(delta);
    ring_.write_pos.store(write);
    highest_write_ = std::max(highest_write_, write);
  }

  void scribble(std::uint16_t offset, std::span<const std::byte> raw) {
    const std::size_t at = offset % (bytes_.size() - 7);
    std::memcpy(bytes_.data() + at, raw.data(), raw.size());
  }

  void write_header(std::uint16_t offset, std::uint32_t size, std::uint32_t tag) {
    detail::store_record_header(bytes_.data() + aligned_offset(offset), size, tag);
  }

  void write_padding(std::uint16_t offset) {
    const std::size_t at = aligned_offset(offset);
    const auto size = static_cast<std::uint32_t>(bytes_.size() - at - kRecordHeaderSize);
    detail::store_record_header(bytes_.data() + at, size, kRecordTagPadding);
  }

 private:
  std::size_t aligned_offset(std::uint16_t offset) const noexcept {
    return offset & (bytes_.size() - 1) & ~std::size_t{kRecordAlignment - 1};
  }

  // Without a record, position() moves only past padding records, which end at the ring's end,
  // within the published bytes.
  void check_padding_skipped(std::uint64_t before) const {
    const std::uint64_t after = reader_.position();
    if (after == before) return;
    PROCPOOL_FUZZ_CHECK((after & (bytes_.size() - 1)) == 0);
    PROCPOOL_FUZZ_CHECK(after - before <= bytes_.size());
    PROCPOOL_FUZZ_CHECK(after <= highest_write_);
    PROCPOOL_FUZZ_CHECK(after - released_ <= bytes_.size());
  }

  void check_record(std::span<const std::byte> record, std::uint64_t before) {
    const std::size_t capacity = bytes_.size();
    const auto base = reinterpret_cast<std::uintptr_t>(bytes_.data());
    const auto start = reinterpret_cast<std::uintptr_t>(record.data());
    // Inside the ring, behind an 8-aligned header, within the size limit.
    PROCPOOL_FUZZ_CHECK(start >= base + kRecordHeaderSize && start <= base + capacity);
    const std::size_t offset = start - base;
    PROCPOOL_FUZZ_CHECK(record.size() <= capacity - offset);
    PROCPOOL_FUZZ_CHECK(offset % kRecordAlignment == 0);
    PROCPOOL_FUZZ_CHECK(record.size() <= reader_.max_payload());
    // The header it came from is a data header announcing exactly this size.
    const std::uint64_t header = detail::load_record_header(bytes_.data() + offset - 8);
    PROCPOOL_FUZZ_CHECK(detail::record_tag(header) == kRecordTagData);
    PROCPOOL_FUZZ_CHECK(detail::record_size(header) == record.size());
    // position() moved just past it (maybe past padding first), within the published bytes and
    // one ring of the last release.
    const std::uint64_t after = reader_.position();
    const std::uint64_t footprint = ring_record_footprint(record.size());
    PROCPOOL_FUZZ_CHECK(after - before >= footprint && after - before <= capacity);
    PROCPOOL_FUZZ_CHECK(((after - footprint) & (capacity - 1)) == offset - kRecordHeaderSize);
    PROCPOOL_FUZZ_CHECK(after <= highest_write_);
    PROCPOOL_FUZZ_CHECK(after - released_ <= capacity);
    seen_.push_back(after);
    // Read every payload byte, as a consumer copying it out would, so ASan checks each one.
    std::vector<std::byte> copy(record.begin(), record.end());
    PROCPOOL_FUZZ_CHECK(copy.size() == record.size());
  }

  RingData& ring_;
  std::span<std::byte> bytes_;
  RingReader reader_;
  std::uint64_t released_;       // the read_pos the reader must have stored last
  std::uint64_t highest_write_;  // no record may end beyond the highest write_pos published
  bool producer_waits_;
  bool faulted_;
  std::vector<std::uint64_t> seen_;
};

void run_op(RingOp op, ByteSource& in, ReaderHarness& harness) {
  switch (op) {
    case RingOp::kRead:
      harness.read();
      return;
    case RingOp::kDrain:
      harness.drain();
      return;
    case RingOp::kRelease:
      harness.release();
      return;
    case RingOp::kReleaseTo: {
      const std::uint8_t pick = in.u8();
      harness.release_to(pick < 0x80 ? harness.seen_position(pick) : in.u64());
      return;
    }
    case RingOp::kPoll:
      harness.poll();
      return;
    case RingOp::kMoveWrite:
      harness.move_write(static_cast<std::int32_t>(in.u32()));
      return;
    case RingOp::kScribble: {
      const std::uint16_t offset = in.u16();
      std::byte raw[8] = {};
      const std::span<const std::byte> given = in.take(sizeof raw);
      std::memcpy(raw, given.data(), given.size());
      harness.scribble(offset, raw);
      return;
    }
    case RingOp::kWriteData: {
      const std::uint16_t offset = in.u16();
      harness.write_header(offset, in.u32(), kRecordTagData);
      return;
    }
    case RingOp::kWritePadding:
      harness.write_padding(in.u16());
      return;
  }
}

}  // namespace
}  // namespace procpool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace procpool;
  using namespace procpool::fuzz;
  ByteSource in(std::as_bytes(std::span<const std::uint8_t>(data, size)));

  const std::uint64_t capacity = ring_capacity_for(in.u8());
  const std::uint8_t flags = in.u8();
  const std::uint64_t read_pos = in.u64();
  const std::uint64_t write_pos = read_pos + in.u64();

  RecordArea area(capacity);
  const std::span<const std::byte> contents = in.take(capacity);
  std::memcpy(area.bytes().data(), contents.data(), contents.size());
  std::memset(area.bytes().data() + contents.size(), 0, capacity - contents.size());

  auto ring = std::make_unique<RingData>();
  ring->read_pos.store(read_pos);
  ring->write_pos.store(write_pos);
  const bool producer_waits = (flags & kProducerWaits) != 0;
  if (producer_waits) ring->writable.prepare_wait();  // announced, never withdrawn

  ReaderHarness harness(*ring, area.bytes(), producer_waits);
  while (!in.empty()) {
    run_op(static_cast<RingOp>(in.u8() % kRingOpCount), in, harness);
  }
  // However the script ended, take everything that is left and hand it back.
  harness.drain();
  harness.release();
  return 0;
}
