#pragma once

// "did you mean": the known word closest to a misspelt one, for unknown config keys.

#include <optional>  // no close word
#include <span>      // the candidates
#include <string_view>

namespace procpool::tool {

// The candidate closest to `word` by edit distance (insertions, deletions, substitutions and
// swaps of two adjacent letters each count one), if it is close enough to be a likely typo: at
// most a third of the word's length, and at least 1. Ties go to the earlier candidate.
std::optional<std::string_view> closest_word(std::string_view word,
                                             std::span<const std::string_view> candidates);

}  // namespace procpool::tool
