// LineReader: map's input, split into lines, read through a pipe as map reads standard input.

#include "map/line_reader.hpp"

#include <fcntl.h>   // pipe2
#include <unistd.h>  // write, close

#include <cerrno>   // errno
#include <cstring>  // std::strerror
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using procpool::tool::LineReader;
using Next = LineReader::Next;

// What the reader makes of `input`: each line, "<too long>" for a line over max_line, in order.
// The input is written to a pipe in one piece and the pipe closed (it fits: at most 64 KiB).
std::vector<std::string> read_all(const std::string& input, std::size_t max_line,
                                  std::size_t read_buffer) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  EXPECT_EQ(::write(fds[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  ::close(fds[1]);
  LineReader reader(fds[0], max_line, read_buffer);
  std::vector<std::string> lines;
  // Each fill() reads at least one byte or the end, so this many rounds always suffice.
  for (std::size_t round = 0; round < 4 * input.size() + 8; ++round) {
    std::string_view line;
    const Next next = reader.next(line);
    if (next == Next::kEnd) break;
    if (next == Next::kLine) lines.emplace_back(line);
    if (next == Next::kTooLong) lines.emplace_back("<too long>");
    if (next == Next::kNeedInput) {
      EXPECT_TRUE(reader.fill()) << std::strerror(errno);
    }
  }
  ::close(fds[0]);
  return lines;
}

using Lines = std::vector<std::string>;

TEST(LineReader, SplitsOnNewlines) {
  EXPECT_EQ(read_all("1\n22\n333\n", 100, 1 << 20), (Lines{"1", "22", "333"}));
}

TEST(LineReader, EmptyLinesAreLines) {
  EXPECT_EQ(read_all("\na\n\n", 100, 1 << 20), (Lines{"", "a", ""}));
}

TEST(LineReader, ALastLineWithoutNewlineIsALine) {
  EXPECT_EQ(read_all("1\n2\n41", 100, 1 << 20), (Lines{"1", "2", "41"}));
}

TEST(LineReader, EmptyInputHasNoLine) { EXPECT_EQ(read_all("", 100, 1 << 20), Lines{}); }

// A buffer of 4 bytes: lines cross reads, the unread rest moves to the front, and the buffer
// grows to hold a line longer than itself.
TEST(LineReader, LinesLongerThanOneReadComeWhole) {
  EXPECT_EQ(read_all("abc\ndefghij\nk\nlmnopqrstuvwxyz\n", 100, 4),
            (Lines{"abc", "defghij", "k", "lmnopqrstuvwxyz"}));
}

TEST(LineReader, ALineOverTheLimitIsSkippedAndTheNextOneRead) {
  EXPECT_EQ(read_all("12345\n123456\n1\n", 5, 4), (Lines{"12345", "<too long>", "1"}));
  EXPECT_EQ(read_all("a\n" + std::string(1000, 'x') + "\nb\n", 10, 1 << 20),
            (Lines{"a", "<too long>", "b"}));
}

TEST(LineReader, ALastLineOverTheLimitWithoutNewlineIsSkipped) {
  EXPECT_EQ(read_all("a\n" + std::string(100, 'x'), 10, 4), (Lines{"a", "<too long>"}));
}

TEST(LineReader, AReadErrorIsReported) {
  LineReader reader(-1, 100);
  std::string_view line;
  EXPECT_EQ(reader.next(line), Next::kNeedInput);
  EXPECT_FALSE(reader.fill());
  EXPECT_EQ(errno, EBADF);
}

// An O_NONBLOCK input with nothing to read yet: not an error, and not the end.
TEST(LineReader, NothingToReadYetIsNotTheEnd) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  LineReader reader(fds[0], 100);
  std::string_view line;
  EXPECT_EQ(reader.next(line), Next::kNeedInput);
  EXPECT_TRUE(reader.fill());
  EXPECT_EQ(reader.next(line), Next::kNeedInput);
  ASSERT_EQ(::write(fds[1], "x\n", 2), 2);
  EXPECT_TRUE(reader.fill());
  ASSERT_EQ(reader.next(line), Next::kLine);
  EXPECT_EQ(line, "x");
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
