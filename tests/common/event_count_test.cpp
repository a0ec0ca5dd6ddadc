// The cross-process eventcount: no lost wake-ups, bounded waits, waiter bookkeeping.

#include <gtest/gtest.h>

#include <thread>  // std::jthread

#include "child_process.hpp"
#include "procpool/segment.hpp"
#include "procpool/wait_strategy.hpp"
#include "test_timing.hpp"  // scaled

namespace procpool {
namespace {

using test::ChildProcess;
using test::scaled;
using namespace std::chrono_literals;

// No spinning at all: every wait goes through prepare_wait / futex, the path that can lose a
// wake-up if the protocol is wrong.
constexpr WaitPolicy kSleepOnly{std::chrono::nanoseconds(0)};

TEST(EventCount, WaitWithoutNotifyTimesOutAndRemovesTheWaiter) {
  EventCount event;
  const auto start = std::chrono::steady_clock::now();
  const EventCount::Key key = event.prepare_wait();
  EXPECT_EQ(event.waiters(), 1U);
  EXPECT_EQ(event.wait(key, 50ms), WaitResult::kTimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_EQ(event.waiters(), 0U);
}

TEST(EventCount, CancelRemovesTheWaiter) {
  EventCount event;
  (void)event.prepare_wait();
  event.cancel_wait();
  EXPECT_EQ(event.waiters(), 0U);
}

TEST(EventCount, NotifyBeforeWaitIsNotLost) {
  EventCount event;
  const EventCount::Key key = event.prepare_wait();
  event.notify();  // lands between the announcement and the sleep
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(event.wait(key, 10s), WaitResult::kReady);
  EXPECT_LT(std::chrono::steady_clock::now() - start, scaled(5s));
}

TEST(EventCount, NotifyFromAnotherThreadWakesASleeper) {
  EventCount event;
  std::atomic<bool> flag{false};
  std::jthread notifier([&] {
    // Wait until the main thread is announced, so the notify must go through the futex; bounded,
    // and it notifies anyway, so a main thread that never announces itself fails by name here
    // instead of hanging the test.
    const auto deadline = std::chrono::steady_clock::now() + scaled(5s);
    while (event.waiters() == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the main thread never announced itself as a waiter";
        break;
      }
      std::this_thread::yield();
    }
    flag.store(true, std::memory_order_release);
    event.notify();
  });
  EXPECT_EQ(wait_until(
                event, [&] { return flag.load(std::memory_order_acquire); }, kSleepOnly, 10s),
            WaitResult::kReady);
}

// 100,000 round trips between two processes through a segment's rings, each side sleeping on the
// futex every time it waits (no spin). The child attaches through its own mapping at a different
// address, as a real worker does. One lost wake-up makes a wait time out and fails the test.
TEST(EventCount, HundredThousandCrossProcessRoundTripsLoseNoWakeUp) {
  constexpr std::uint64_t kRoundTrips = 100'000;
  Segment segment = Segment::create(SegmentConfig{}, 7);
  ChildProcess child = ChildProcess::fork([&] {
    Segment mine = Segment::attach(::dup(segment.fd()));
    RingReader requests = mine.worker_reader();
    RingWriter replies = mine.worker_writer();
    for (std::uint64_t i = 0; i < kRoundTrips; ++i) {
      if (wait_until(
              mine.to_worker().readable, [&] { return requests.poll(); }, kSleepOnly, 10s) !=
          WaitResult::kReady) {
        return 2;
      }
      std::span<const std::byte> record;
      std::uint64_t value;
      if (requests.try_read(record) != ReadStatus::kOk || record.size() != 8) return 3;
      std::memcpy(&value, record.data(), 8);
      requests.release();
      ++value;
      if (replies.try_write(std::as_bytes(std::span(&value, 1))) != WriteStatus::kOk) return 4;
      replies.publish();
    }
    return 0;
  });
  ASSERT_TRUE(child.started());
  RingWriter requests = segment.supervisor_writer();
  RingReader replies = segment.supervisor_reader();
  for (std::uint64_t i = 0; i < kRoundTrips; ++i) {
    ASSERT_EQ(requests.try_write(std::as_bytes(std::span(&i, 1))), WriteStatus::kOk);
    requests.publish();
    ASSERT_EQ(
        wait_until(
            segment.to_supervisor().readable, [&] { return replies.poll(); }, kSleepOnly, 10s),
        WaitResult::kReady)
        << "lost wake-up at round trip " << i;
    std::span<const std::byte> record;
    ASSERT_EQ(replies.try_read(record), ReadStatus::kOk);
    std::uint64_t value;
    std::memcpy(&value, record.data(), 8);
    ASSERT_EQ(value, i + 1);
    replies.release();
  }
  EXPECT_TRUE(child.exited_cleanly(10s));
}

// The peer that should notify is SIGKILLed: the waiter comes back by its bound, not never.
TEST(EventCount, WaiterWhosePeerDiedReturnsByItsTimeout) {
  Segment segment = Segment::create(SegmentConfig{}, 1);
  int ready_pipe[2];
  ASSERT_EQ(::pipe(ready_pipe), 0);
  ChildProcess peer = ChildProcess::fork([&] {
    char byte = 1;
    (void)!::write(ready_pipe[1], &byte, 1);
    for (;;) ::pause();  // would notify "later"; is killed first
    return 0;
  });
  ASSERT_TRUE(peer.started());
  char byte;
  ASSERT_EQ(::read(ready_pipe[0], &byte, 1), 1);
  peer.kill(SIGKILL);
  ASSERT_TRUE(peer.wait_for_exit(10s).has_value());
  RingReader reader = segment.supervisor_reader();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(
      wait_until(
          segment.to_supervisor().readable, [&] { return reader.poll(); }, WaitPolicy{}, 200ms),
      WaitResult::kTimedOut);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, scaled(5s));
  EXPECT_EQ(segment.to_supervisor().readable.waiters(), 0U);
  ::close(ready_pipe[0]);
  ::close(ready_pipe[1]);
}

}  // namespace
}  // namespace procpool
