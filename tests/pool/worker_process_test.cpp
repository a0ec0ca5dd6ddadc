// WorkerProcess's state machine (supervisor/pool/worker_process.hpp): the transitions the pool
// makes are allowed, the ones that would skip a step (serving before READY, stopping a worker
// that never served) are not, and each transition member leaves the state and the run's fields
// as the rest of the pool relies on.
#include "worker_process.hpp"

#include <gtest/gtest.h>

#include <chrono>  // time points

namespace procpool::detail {
namespace {

using State = WorkerProcess::State;
using namespace std::chrono_literals;

TEST(WorkerProcessStates, TheLifeOfAWorkerIsAllowed) {
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kEmpty, State::kStarting));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kStarting, State::kReady));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kReady, State::kDraining));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kReady, State::kStopping));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kDraining, State::kStopping));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kStopping, State::kEmpty));
  EXPECT_TRUE(WorkerProcess::transition_allowed(State::kBackoff, State::kStarting));
  // Exits and failed spawns end any state.
  for (State from : {State::kEmpty, State::kStarting, State::kReady, State::kDraining,
                     State::kStopping, State::kBackoff}) {
    EXPECT_TRUE(WorkerProcess::transition_allowed(from, State::kEmpty));
    EXPECT_TRUE(WorkerProcess::transition_allowed(from, State::kBackoff));
  }
}

TEST(WorkerProcessStates, StepsCannotBeSkipped) {
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kEmpty, State::kReady));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kBackoff, State::kReady));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kStarting, State::kDraining));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kStarting, State::kStopping));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kStopping, State::kReady));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kDraining, State::kReady));
  EXPECT_FALSE(WorkerProcess::transition_allowed(State::kReady, State::kStarting));
}

TEST(WorkerProcessStates, TransitionsAreWhatStateLiveAndMetricsReport) {
  WorkerProcess worker;
  EXPECT_EQ(worker.state(), State::kEmpty);
  EXPECT_FALSE(worker.live());
  const auto t0 = Clock::now();
  worker.launched(ChildProcess(), nullptr, nullptr, 7, t0, t0 + 5s, 1.0);
  EXPECT_EQ(worker.state(), State::kStarting);
  EXPECT_TRUE(worker.live());
  EXPECT_EQ(worker.metrics_state(), WorkerMetrics::State::Starting);
  EXPECT_EQ(worker.incarnation, 7u);
  EXPECT_EQ(worker.deadline, t0 + 5s) << "READY by";
  worker.became_ready(t0 + 1s);
  EXPECT_EQ(worker.state(), State::kReady);
  EXPECT_EQ(worker.ready_at, t0 + 1s);
  worker.drain();
  EXPECT_EQ(worker.state(), State::kDraining);
  worker.drain();  // already draining: nothing to do
  EXPECT_EQ(worker.state(), State::kDraining);
  worker.stopping(t0 + 9s);
  EXPECT_EQ(worker.state(), State::kStopping);
  EXPECT_EQ(worker.deadline, t0 + 9s) << "SIGKILL at";
  worker.back_off(t0 + 10s);
  EXPECT_FALSE(worker.live());
  EXPECT_EQ(worker.metrics_state(), WorkerMetrics::State::Backoff);
  EXPECT_EQ(worker.deadline, t0 + 10s) << "restart at";
  worker.empty();
  EXPECT_EQ(worker.metrics_state(), WorkerMetrics::State::Empty);
}

TEST(WorkerProcessStates, DrainOnlyLeavesReady) {
  WorkerProcess worker;
  const auto t0 = Clock::now();
  worker.launched(ChildProcess(), nullptr, nullptr, 1, t0, t0 + 5s, 1.0);
  worker.drain();  // not serving yet: a kill of a starting worker must not skip READY
  EXPECT_EQ(worker.state(), State::kStarting);
}

TEST(WorkerProcessStates, AFreshRunForgetsTheLastOnesKill) {
  WorkerProcess worker;
  const auto t0 = Clock::now();
  worker.launched(ChildProcess(), nullptr, nullptr, 1, t0, t0 + 5s, 1.0);
  EXPECT_FALSE(worker.kill("no process to kill", KillCause::kStop)) << "nothing was launched";
  EXPECT_FALSE(worker.killed);
  worker.killed = true;
  worker.kill_cause = KillCause::kProtocolViolation;
  worker.violation = ProtocolViolation::BadFrame;
  worker.timed_out_task = 3;
  worker.memory_exceeded = true;
  worker.back_off(t0 + 1s);
  worker.launched(ChildProcess(), nullptr, nullptr, 2, t0 + 1s, t0 + 6s, 2.0);
  EXPECT_FALSE(worker.killed);
  EXPECT_EQ(worker.kill_cause, KillCause::kUnhealthy);
  EXPECT_EQ(worker.violation, ProtocolViolation::None);
  EXPECT_EQ(worker.timed_out_task, WorkerProcess::kNoTask);
  EXPECT_FALSE(worker.memory_exceeded);
}

}  // namespace
}  // namespace procpool::detail
