// WorkerChannel (supervisor/pool/worker_channel.hpp) without a worker process: the test maps the
// channel's segment a second time and plays the worker with the ring views directly. Tasks go
// out in fragments and resume as the worker makes room; answers come back whole, copied out of
// the ring, within the common limits (frame_limits.hpp); everything else a worker might write
// wrongly comes back as the ProtocolViolation the pool reports.
#include "worker_channel.hpp"

#include <gtest/gtest.h>
#include <unistd.h>  // dup

#include <cstring>  // std::memset
#include <string>
#include <vector>

#include "procpool/frame_limits.hpp"

namespace procpool::detail {
namespace {

constexpr std::uint64_t kMaxPayload = 16 * 1024;
// The smallest ring, so that a task and an answer of kMaxPayload need several fragments.
constexpr std::uint64_t kRing = 4096;
// Every loop below moves at least one fragment per round, so this bounds it generously.
constexpr int kMaxRounds = 1000;

SegmentConfig small_rings() {
  SegmentConfig config;
  config.to_worker_capacity = kRing;
  config.to_supervisor_capacity = kRing;
  return config;
}

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The worker's end: its own mapping of the channel's segment.
struct FakeWorker {
  explicit FakeWorker(const WorkerChannel& channel)
      : segment(Segment::attach(::dup(channel.segment_fd()))),
        from_supervisor(segment.worker_reader()),
        to_supervisor(segment.worker_writer()) {}

  // Reads every frame the supervisor published, reassembling tasks; hands the bytes back.
  void receive() {
    std::span<const std::byte> record;
    while (from_supervisor.try_read(record) == ReadStatus::kOk) {
      FrameHeader header;
      std::span<const std::byte> payload;
      ASSERT_EQ(decode_frame(record, header, payload), DecodeStatus::kOk);
      if (header.type != FrameType::kTask) {
        control.push_back(header);
        if (header.type == FrameType::kInit) init = text_of(payload);
        continue;
      }
      const AssemblyStatus status = tasks.add(header, payload);
      ASSERT_FALSE(is_violation(status)) << to_string(status);
      if (status == AssemblyStatus::kComplete) {
        task_headers.push_back(tasks.header());
        task_payloads.push_back(std::string(tasks.text()));
      }
    }
    from_supervisor.release();
  }

  Segment segment;
  RingReader from_supervisor;
  RingWriter to_supervisor;
  FrameAssembler tasks{kMaxPayload};
  std::vector<FrameHeader> control;
  std::string init;
  std::vector<FrameHeader> task_headers;
  std::vector<std::string> task_payloads;
};

FrameHeader task_header(std::uint64_t id, bool chunk = false) {
  FrameHeader header;
  header.type = FrameType::kTask;
  header.task_id = id;
  header.handler_id = 2;
  header.attempt = 1;
  header.flags = chunk ? kFrameChunk : 0;
  return header;
}

FrameHeader answer_header(FrameType type, std::uint64_t id) {
  FrameHeader header;
  header.type = type;
  header.task_id = id;
  return header;
}

// The worker sends `payload` as its SDK does (FrameWriter), the channel reading as it goes.
// Returns what the channel made of it: the frames it returned, or its fault.
struct Received {
  std::vector<WorkerChannel::Frame> frames;
  std::vector<std::string> payloads;
  bool faulted = false;
};

Received send_answer(WorkerChannel& channel, FakeWorker& worker, const FrameHeader& header,
                     std::string_view payload) {
  Received received;
  FrameWriter writer;
  writer.begin(header);
  for (int round = 0; round < kMaxRounds; ++round) {
    const WriteStatus status = writer.write(worker.to_supervisor, as_bytes(payload));
    EXPECT_TRUE(status == WriteStatus::kOk || status == WriteStatus::kFull);
    worker.to_supervisor.publish();
    WorkerChannel::Frame frame;
    WorkerChannel::ReadOutcome outcome;
    while ((outcome = channel.read(frame)) == WorkerChannel::ReadOutcome::kFrame) {
      received.frames.push_back(frame);
      received.payloads.push_back(text_of(frame.payload));
    }
    channel.release();
    if (outcome == WorkerChannel::ReadOutcome::kFault) {
      received.faulted = true;
      return received;
    }
    if (status != WriteStatus::kFull) return received;
  }
  ADD_FAILURE() << "the answer did not get through in " << kMaxRounds << " rounds";
  return received;
}

// One frame written by the worker exactly as given (bypassing FrameWriter's fragmenting).
void write_raw(FakeWorker& worker, const FrameHeader& header, std::string_view payload) {
  ASSERT_EQ(write_frame(worker.to_supervisor, header, as_bytes(payload)), WriteStatus::kOk);
  worker.to_supervisor.publish();
}

WorkerChannel::ReadOutcome read_all(WorkerChannel& channel) {
  WorkerChannel::Frame frame;
  WorkerChannel::ReadOutcome outcome;
  while ((outcome = channel.read(frame)) == WorkerChannel::ReadOutcome::kFrame) {
  }
  channel.release();
  return outcome;
}

TEST(WorkerChannel, PublishesInitWithThePoolsLimitAndWorkerData) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "data for workers");
  FakeWorker worker(channel);
  worker.receive();
  ASSERT_EQ(worker.control.size(), 1u);
  EXPECT_EQ(worker.control[0].type, FrameType::kInit);
  std::uint64_t max_payload = 0;
  std::string_view data;
  ASSERT_TRUE(decode_init(as_bytes(worker.init), max_payload, data));
  EXPECT_EQ(max_payload, kMaxPayload);
  EXPECT_EQ(data, "data for workers");
}

// A task larger than the ring: what fits is written, the rest when the worker hands bytes
// back, and the worker reassembles exactly the payload, with the header's fields and flags.
TEST(WorkerChannel, ALargeTaskResumesAsTheWorkerMakesRoom) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  worker.receive();  // kInit
  std::string payload(kMaxPayload, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);

  channel.begin_task(7, task_header(42, true));
  EXPECT_EQ(channel.writing_task(), 7u);
  int rounds = 0;
  WorkerChannel::WriteOutcome outcome;
  while ((outcome = channel.write_task(as_bytes(payload))) == WorkerChannel::WriteOutcome::kFull) {
    ASSERT_LT(++rounds, kMaxRounds);
    EXPECT_FALSE(channel.writable(as_bytes(payload)));  // full until the worker reads
    EXPECT_EQ(channel.writing_task(), 7u);
    channel.publish();
    worker.receive();
    EXPECT_TRUE(channel.writable(as_bytes(payload)));
  }
  ASSERT_EQ(outcome, WorkerChannel::WriteOutcome::kDone);
  EXPECT_GT(rounds, 1);  // it did have to wait for room
  EXPECT_EQ(channel.writing_task(), WorkerChannel::kNoTask);
  channel.publish();
  worker.receive();
  ASSERT_EQ(worker.task_payloads.size(), 1u);
  EXPECT_EQ(worker.task_payloads[0], payload);
  EXPECT_EQ(worker.task_headers[0].task_id, 42u);
  EXPECT_EQ(worker.task_headers[0].handler_id, 2u);
  EXPECT_EQ(worker.task_headers[0].attempt, 1u);
  EXPECT_NE(worker.task_headers[0].flags & kFrameChunk, 0);
}

// A control frame between two fragments of a task would break the task's reassembly.
TEST(WorkerChannel, ControlFramesWaitWhileATaskIsPartlyWritten) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  worker.receive();
  const std::string payload(kMaxPayload, 'x');
  channel.begin_task(3, task_header(9));
  ASSERT_EQ(channel.write_task(as_bytes(payload)), WorkerChannel::WriteOutcome::kFull);
  EXPECT_FALSE(channel.send_control(FrameType::kCancel, 9));
  for (int round = 0; channel.write_task(as_bytes(payload)) != WorkerChannel::WriteOutcome::kDone;
       ++round) {
    ASSERT_LT(round, kMaxRounds);
    channel.publish();
    worker.receive();
  }
  EXPECT_TRUE(channel.send_control(FrameType::kCancel, 9));
  channel.publish();
  worker.receive();
  ASSERT_EQ(worker.task_payloads.size(), 1u);
  EXPECT_EQ(worker.task_payloads[0], payload);
  ASSERT_EQ(worker.control.size(), 2u);  // kInit, then the cancel after the task
  EXPECT_EQ(worker.control[1].type, FrameType::kCancel);
}

// The largest error a worker sends (the detailed form, with the longest type and message), with
// `extra` more bytes of message.
std::string largest_error(std::size_t extra) {
  ErrorDetail detail;
  detail.code = WorkerErrorCode::kHandlerFailed;
  const std::string type(kMaxExceptionType, 't'), message(kMaxErrorMessage + extra, 'e');
  detail.type = type;
  detail.message = message;
  return encode_error_detail(detail);
}

// Answers of exactly the common limits get through whole, fragmented or not; one byte more is
// OversizedResult. (The pool used to allow max_payload + 64 KiB for any answer.)
TEST(WorkerChannel, AnswersUpToTheCommonLimitsArriveWhole) {
  const std::string result(kMaxPayload, 'r');
  const std::string error = largest_error(0);
  ASSERT_EQ(error.size(), frame_payload_limit(FrameType::kError, kMaxPayload));
  const std::pair<FrameType, std::string> cases[] = {
      {FrameType::kResult, result}, {FrameType::kError, error}, {FrameType::kResult, "small"}};
  for (const auto& [type, payload] : cases) {
    WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
    FakeWorker worker(channel);
    const Received received = send_answer(channel, worker, answer_header(type, 5), payload);
    ASSERT_FALSE(received.faulted) << channel.fault().detail;
    ASSERT_EQ(received.frames.size(), 1u);
    EXPECT_EQ(received.frames[0].header.type, type);
    EXPECT_EQ(received.frames[0].header.task_id, 5u);
    EXPECT_EQ(received.frames[0].header.flags & kFrameMore, 0);
    EXPECT_EQ(received.payloads[0], payload);
  }
}

TEST(WorkerChannel, AnAnswerAboveItsLimitIsAnOversizedResult) {
  const std::string error = largest_error(1);
  const std::pair<FrameType, std::string> cases[] = {
      {FrameType::kResult, std::string(kMaxPayload + 1, 'r')}, {FrameType::kError, error}};
  for (const auto& [type, payload] : cases) {
    WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
    FakeWorker worker(channel);
    const Received received = send_answer(channel, worker, answer_header(type, 5), payload);
    EXPECT_TRUE(received.faulted);
    EXPECT_TRUE(received.frames.empty());
    EXPECT_EQ(channel.fault().violation, ProtocolViolation::OversizedResult);
    EXPECT_EQ(channel.fault().detail, "result above max_payload");
  }
}

// The answer is the channel's copy: what the worker scribbles on the ring afterwards (before
// the bytes are handed back) changes nothing, so the pool never checks and delivers two
// different versions of it.
TEST(WorkerChannel, AnAnswerIsCopiedOutOfTheRing) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  write_raw(worker, answer_header(FrameType::kResult, 5), "the answer");
  WorkerChannel::Frame frame;
  ASSERT_EQ(channel.read(frame), WorkerChannel::ReadOutcome::kFrame);
  std::span<std::byte> ring = worker.segment.to_supervisor_bytes();
  std::memset(ring.data(), 'X', ring.size());
  EXPECT_EQ(text_of(frame.payload), "the answer");
  EXPECT_EQ(channel.take_answer(), "the answer");
}

// Frames without task data go to the caller as they are (it knows when each may come).
TEST(WorkerChannel, OtherFramesArePassedThrough) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  const std::string names = encode_handler_names({"echo", "fib"});
  write_raw(worker, answer_header(FrameType::kReady, 0), names);
  WorkerChannel::Frame frame;
  ASSERT_EQ(channel.read(frame), WorkerChannel::ReadOutcome::kFrame);
  EXPECT_EQ(frame.header.type, FrameType::kReady);
  EXPECT_EQ(text_of(frame.payload), names);
  EXPECT_EQ(channel.read(frame), WorkerChannel::ReadOutcome::kEmpty);
}

TEST(WorkerChannel, InterleavedFragmentsAreABadFrame) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  FrameHeader first = answer_header(FrameType::kResult, 5);
  first.flags = kFrameMore;
  write_raw(worker, first, "part of 5");
  write_raw(worker, answer_header(FrameType::kResult, 6), "all of 6");
  EXPECT_EQ(read_all(channel), WorkerChannel::ReadOutcome::kFault);
  EXPECT_EQ(channel.fault().violation, ProtocolViolation::BadFrame);
  EXPECT_EQ(channel.fault().detail, "result fragments interleaved");
}

TEST(WorkerChannel, AnUndecodableFrameIsABadFrame) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  std::span<std::byte> room;
  ASSERT_EQ(worker.to_supervisor.try_reserve(4, room), WriteStatus::kOk);  // shorter than a header
  std::memset(room.data(), 0, room.size());
  worker.to_supervisor.commit(4);
  worker.to_supervisor.publish();
  EXPECT_EQ(read_all(channel), WorkerChannel::ReadOutcome::kFault);
  EXPECT_EQ(channel.fault().violation, ProtocolViolation::BadFrame);
  EXPECT_EQ(channel.fault().detail, to_string(DecodeStatus::kTooShort));
}

TEST(WorkerChannel, AnImpossibleRingPositionIsRingCorruption) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  worker.segment.to_supervisor().write_pos.store(3, std::memory_order_release);  // misaligned
  EXPECT_EQ(read_all(channel), WorkerChannel::ReadOutcome::kFault);
  EXPECT_EQ(channel.fault().violation, ProtocolViolation::RingCorruption);
}

// A worker that moves its read position in the ring to it past what was written: the task
// being written is dropped and the fault says so.
TEST(WorkerChannel, ACorruptReadPositionFailsTheTaskWrite) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  worker.segment.to_worker().read_pos.store(kRing * 8, std::memory_order_release);
  const std::string payload(kMaxPayload, 'x');
  channel.begin_task(3, task_header(9));
  EXPECT_EQ(channel.write_task(as_bytes(payload)), WorkerChannel::WriteOutcome::kFault);
  EXPECT_EQ(channel.fault().violation, ProtocolViolation::RingCorruption);
  EXPECT_EQ(channel.writing_task(), WorkerChannel::kNoTask);
}

void ring(const WorkerChannel& channel, std::uint64_t times) {
  const std::uint64_t value = times;
  ASSERT_EQ(::write(channel.doorbell_fd(), &value, sizeof value),
            static_cast<ssize_t>(sizeof value));
}

// Rings are counted across wake-ups; as many as the ring traffic explains (plus the slack) are
// fine, one more is a flood.
TEST(WorkerChannel, DoorbellRingsBeyondTheTrafficAreAFlood) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  EXPECT_FALSE(channel.take_rings());  // nothing rang yet
  for (int i = 0; i < 3; ++i) write_raw(worker, answer_header(FrameType::kResult, 5), "");
  ASSERT_EQ(read_all(channel), WorkerChannel::ReadOutcome::kEmpty);
  const std::uint64_t explained = channel.traffic() / ring_record_footprint(sizeof(FrameHeader)) +
                                  WorkerChannel::kDoorbellSlack;
  EXPECT_GE(explained, WorkerChannel::kDoorbellSlack + 3);
  ring(channel, explained - 1);
  ASSERT_TRUE(channel.take_rings());
  EXPECT_EQ(channel.check_doorbell().violation, ProtocolViolation::None);
  ring(channel, 1);
  ASSERT_TRUE(channel.take_rings());
  EXPECT_EQ(channel.rings(), explained);
  EXPECT_EQ(channel.check_doorbell().violation, ProtocolViolation::None);
  ring(channel, 1);
  ASSERT_TRUE(channel.take_rings());
  EXPECT_EQ(channel.check_doorbell().violation, ProtocolViolation::DoorbellFlood);
}

TEST(WorkerChannel, TheDoorbellCheckSeesACorruptReadPosition) {
  WorkerChannel channel(small_rings(), 1, kMaxPayload, "");
  FakeWorker worker(channel);
  worker.segment.to_worker().read_pos.store(kRing * 8, std::memory_order_release);
  ring(channel, 1);
  ASSERT_TRUE(channel.take_rings());
  const ChannelFault fault = channel.check_doorbell();
  EXPECT_EQ(fault.violation, ProtocolViolation::RingCorruption);
  EXPECT_EQ(fault.detail, to_string(RingFault::kPositionOverrun));
}

}  // namespace
}  // namespace procpool::detail
