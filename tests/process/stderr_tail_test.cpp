// StderrTail: the last lines of a worker's stderr for a crash report, bounded in lines and in
// bytes whatever the worker writes (many lines, partial lines, one endless line).

#include "stderr_tail.hpp"

#include <gtest/gtest.h>

#include <string>  // std::string
#include <vector>  // lines of text()

namespace procpool::detail {
namespace {

// text() split back into its lines, each without the "  | " prefix.
std::vector<std::string> lines_of(const StderrTail& tail) {
  std::vector<std::string> out;
  const std::string text = tail.text();
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    EXPECT_NE(end, std::string::npos) << "text() does not end with a newline";
    if (end == std::string::npos) break;
    const std::string line = text.substr(at, end - at);
    EXPECT_EQ(line.rfind("  | ", 0), 0U) << line;
    out.push_back(line.substr(4));
    at = end + 1;
  }
  return out;
}

std::string numbered(std::size_t n) { return "line " + std::to_string(n); }

TEST(StderrTail, StartsEmpty) {
  StderrTail tail;
  EXPECT_TRUE(tail.empty());
  EXPECT_EQ(tail.text(), "");
}

TEST(StderrTail, KeepsLinesInOrderWithThePrefix) {
  StderrTail tail;
  tail.append("first\nsecond\n");
  EXPECT_FALSE(tail.empty());
  EXPECT_EQ(tail.text(), "  | first\n  | second\n");
}

TEST(StderrTail, JoinsALineSplitAcrossAppends) {
  StderrTail tail;
  tail.append("hel");
  tail.append("");
  tail.append("lo wor");
  tail.append("ld\nnext");
  EXPECT_EQ(lines_of(tail), (std::vector<std::string>{"hello world", "next"}));
}

TEST(StderrTail, KeepsEmptyLines) {
  StderrTail tail;
  tail.append("a\n\nb\n");
  EXPECT_EQ(lines_of(tail), (std::vector<std::string>{"a", "", "b"}));
}

TEST(StderrTail, KeepsOnlyTheLastLines) {
  StderrTail tail;
  for (std::size_t n = 0; n < 100; ++n) tail.append(numbered(n) + "\n");
  const std::vector<std::string> lines = lines_of(tail);
  ASSERT_EQ(lines.size(), StderrTail::kMaxLines);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i], numbered(100 - StderrTail::kMaxLines + i));
  }
}

// A partial last line (the worker died mid-line) is shown, and counts as one of the kept lines.
TEST(StderrTail, APartialLastLineIsShownWithinTheLineLimit) {
  StderrTail tail;
  tail.append("only part");
  EXPECT_EQ(lines_of(tail), (std::vector<std::string>{"only part"}));
  for (std::size_t n = 0; n < 50; ++n) tail.append(numbered(n) + "\n");
  tail.append("dying wor");
  const std::vector<std::string> lines = lines_of(tail);
  ASSERT_EQ(lines.size(), StderrTail::kMaxLines);
  EXPECT_EQ(lines.front(), numbered(50 - StderrTail::kMaxLines + 1));
  EXPECT_EQ(lines[lines.size() - 2], numbered(49));
  EXPECT_EQ(lines.back(), "dying wor");
}

TEST(StderrTail, AHugeLineIsCutToTheLineByteLimit) {
  StderrTail tail;
  const std::string huge(4 << 20, 'x');
  tail.append(huge);  // no newline yet
  ASSERT_EQ(lines_of(tail).size(), 1U);
  EXPECT_EQ(lines_of(tail)[0], std::string(StderrTail::kMaxLineBytes, 'x'));
  tail.append(huge + "\nafter\n");
  EXPECT_EQ(lines_of(tail),
            (std::vector<std::string>{std::string(StderrTail::kMaxLineBytes, 'x'), "after"}));
}

// Whatever is written, the report stays within kMaxLines lines of kMaxLineBytes each.
TEST(StderrTail, TextStaysWithinTheByteBound) {
  constexpr std::size_t kPrefix = 5;  // "  | " and '\n'
  constexpr std::size_t kBound = StderrTail::kMaxLines * (StderrTail::kMaxLineBytes + kPrefix);
  StderrTail tail;
  std::string chunk;
  for (std::size_t n = 0; n < 200; ++n)
    chunk += std::string(1000 + n, static_cast<char>('a' + n % 26)) + "\n";
  tail.append(chunk);
  tail.append(std::string(100'000, 'z'));  // and a partial one
  const std::string text = tail.text();
  EXPECT_LE(text.size(), kBound);
  const std::vector<std::string> lines = lines_of(tail);
  ASSERT_EQ(lines.size(), StderrTail::kMaxLines);
  for (const std::string& line : lines) EXPECT_EQ(line.size(), StderrTail::kMaxLineBytes);
  EXPECT_EQ(lines.back(), std::string(StderrTail::kMaxLineBytes, 'z'));
}

}  // namespace
}  // namespace procpool::detail
