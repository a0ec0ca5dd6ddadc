// The checks of a worker's chunked answer (supervisor/pool/chunk_answers.hpp) and the item
// errors built from it (worker_error_kind.hpp), without a worker: the detailed form the SDK
// sends, and the plain messages of a worker built before it, which reach the items' callbacks
// the same way.

#include <gtest/gtest.h>

#include <cstdint>  // codes
#include <string>   // answers

#include "chunk_answers.hpp"
#include "procpool/chunk_format.hpp"
#include "procpool/wire_format.hpp"
#include "worker_error_kind.hpp"

namespace procpool::detail {
namespace {

constexpr auto kFailed = static_cast<std::uint32_t>(WorkerErrorCode::kHandlerFailed);

std::string detailed_error(WorkerErrorCode code, std::string_view type, std::string_view message) {
  ErrorDetail detail;
  detail.code = code;
  detail.type = type;
  detail.has_code = true;
  detail.user_code = 7;
  detail.message = message;
  return encode_error_detail(detail);
}

TEST(ChunkAnswers, ADetailedAnswerIsCheckedItemByItem) {
  std::string body;
  ChunkWriter writer(body);
  writer.begin();
  writer.add_result(0, "ok");
  writer.add_result(
      kFailed, detailed_error(WorkerErrorCode::kHandlerFailed, "std::logic_error", "bad item"));
  bool out_of_memory = false;
  EXPECT_EQ(check_chunk_results(body, 2, true, out_of_memory), 1);
  EXPECT_FALSE(out_of_memory);
  ChunkReader reader(body);
  std::uint32_t code = 0;
  std::string_view bytes;
  ASSERT_TRUE(reader.next_result(code, bytes));
  ASSERT_TRUE(reader.next_result(code, bytes));
  const TaskError error = item_error(code, bytes, 1234);
  EXPECT_EQ(error.kind(), TaskError::Kind::HandlerError);
  EXPECT_STREQ(error.what(), "bad item");
  EXPECT_EQ(error.exception_type(), "std::logic_error");
  EXPECT_EQ(error.code(), 7);
  EXPECT_EQ(error.worker_pid(), 1234);
}

TEST(ChunkAnswers, ADetailedAnswerWithAPlainOrMismatchedItemIsMalformed) {
  for (const std::string& bad :
       {std::string("a plain message"),
        detailed_error(WorkerErrorCode::kCancelled, "std::logic_error", "another code")}) {
    std::string body;
    ChunkWriter writer(body);
    writer.begin();
    writer.add_result(kFailed, bad);
    bool out_of_memory = false;
    EXPECT_EQ(check_chunk_results(body, 1, true, out_of_memory), -1) << bad;
    EXPECT_EQ(check_chunk_results(body, 1, false, out_of_memory), 1) << bad;
  }
}

TEST(ChunkAnswers, AnOlderWorkersPlainMessagesAreRewrittenInTheDetailedForm) {
  std::string body;
  ChunkWriter writer(body);
  writer.begin();
  writer.add_result(0, "first");
  writer.add_result(static_cast<std::uint32_t>(WorkerErrorCode::kMemoryLimit), "std::bad_alloc");
  writer.add_result(kFailed, "");
  bool out_of_memory = false;
  ASSERT_EQ(check_chunk_results(body, 3, false, out_of_memory), 2);
  EXPECT_TRUE(out_of_memory);
  const std::string rewritten = detailed_chunk_results(body);
  out_of_memory = false;
  ASSERT_EQ(check_chunk_results(rewritten, 3, true, out_of_memory), 2);
  ChunkReader reader(rewritten);
  std::uint32_t code = 0;
  std::string_view bytes;
  ASSERT_TRUE(reader.next_result(code, bytes));
  EXPECT_EQ(code, 0u);
  EXPECT_EQ(bytes, "first");
  ASSERT_TRUE(reader.next_result(code, bytes));
  const TaskError memory = item_error(code, bytes, 1);
  EXPECT_EQ(memory.kind(), TaskError::Kind::MemoryLimit);
  EXPECT_STREQ(memory.what(), "std::bad_alloc");
  EXPECT_EQ(memory.exception_type(), "");
  EXPECT_EQ(memory.code(), std::nullopt);
  ASSERT_TRUE(reader.next_result(code, bytes));
  EXPECT_STREQ(item_error(code, bytes, 1).what(), "");
  EXPECT_FALSE(reader.next_result(code, bytes));
  EXPECT_TRUE(reader.complete());
}

}  // namespace
}  // namespace procpool::detail
