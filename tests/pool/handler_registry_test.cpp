// HandlerRegistry (supervisor/pool/handler_registry.hpp): the first READY's names become the
// pool's, later workers must match them, and lookups give the ids the task frames carry.
#include "handler_registry.hpp"

#include <gtest/gtest.h>

namespace procpool::detail {
namespace {

using Announced = HandlerRegistry::Announced;

TEST(HandlerRegistry, FirstAnnouncementIsAdoptedAndLaterOnesMustMatch) {
  HandlerRegistry registry;
  EXPECT_FALSE(registry.find("echo")) << "nothing announced yet";
  EXPECT_EQ(registry.announce({"echo", "fib"}), Announced::kAdopted);
  EXPECT_EQ(registry.announce({"echo", "fib"}), Announced::kSame);
  EXPECT_EQ(registry.announce({"fib", "echo"}), Announced::kDifferent) << "ids are positions";
  EXPECT_EQ(registry.announce({"echo"}), Announced::kDifferent);
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"echo", "fib"})) << "unchanged";
}

TEST(HandlerRegistry, LookupsGiveIdsAndNames) {
  HandlerRegistry registry;
  registry.announce({"echo", "fib"});
  EXPECT_EQ(registry.find("fib"), 1u);
  EXPECT_EQ(registry.find("fib"), 1u) << "the cached last name";
  EXPECT_EQ(registry.find("echo"), 0u);
  EXPECT_FALSE(registry.find("nope"));
  EXPECT_EQ(registry.find("echo"), 0u) << "a miss does not spoil the cache";
  EXPECT_EQ(registry.name(1), "fib");
  EXPECT_EQ(registry.name(7), "#7");
}

}  // namespace
}  // namespace procpool::detail
