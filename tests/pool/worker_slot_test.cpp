// WorkerSlot's state machine (supervisor/pool/worker_slot.hpp): the transitions the pool makes
// are allowed, and the ones that would skip a step (serving before READY, stopping a worker
// that never served) are not.
#include "worker_slot.hpp"

#include <gtest/gtest.h>

namespace procpool::detail {
namespace {

using State = WorkerSlot::State;

TEST(WorkerSlotStates, TheLifeOfAWorkerIsAllowed) {
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kEmpty, State::kStarting));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kStarting, State::kReady));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kReady, State::kDraining));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kReady, State::kStopping));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kDraining, State::kStopping));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kStopping, State::kEmpty));
  EXPECT_TRUE(WorkerSlot::transition_allowed(State::kBackoff, State::kStarting));
  // Exits and failed spawns end any state.
  for (State from : {State::kEmpty, State::kStarting, State::kReady, State::kDraining,
                     State::kStopping, State::kBackoff}) {
    EXPECT_TRUE(WorkerSlot::transition_allowed(from, State::kEmpty));
    EXPECT_TRUE(WorkerSlot::transition_allowed(from, State::kBackoff));
  }
}

TEST(WorkerSlotStates, StepsCannotBeSkipped) {
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kEmpty, State::kReady));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kBackoff, State::kReady));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kStarting, State::kDraining));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kStarting, State::kStopping));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kStopping, State::kReady));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kDraining, State::kReady));
  EXPECT_FALSE(WorkerSlot::transition_allowed(State::kReady, State::kStarting));
}

TEST(WorkerSlotStates, SetStateIsWhatStateLiveAndMetricsReport) {
  WorkerSlot slot;
  EXPECT_EQ(slot.state(), State::kEmpty);
  EXPECT_FALSE(slot.live());
  slot.set_state(State::kStarting);
  EXPECT_EQ(slot.state(), State::kStarting);
  EXPECT_TRUE(slot.live());
  EXPECT_EQ(slot.metrics_state(), WorkerMetrics::State::Starting);
  slot.set_state(State::kBackoff);
  EXPECT_FALSE(slot.live());
  EXPECT_EQ(slot.metrics_state(), WorkerMetrics::State::Backoff);
}

}  // namespace
}  // namespace procpool::detail
