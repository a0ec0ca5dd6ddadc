#pragma once

// Every public procpool header includes this one first. Compiled below C++20, the headers would
// otherwise fail with a long cascade of errors (concepts, std::span, ...) that never names the
// cause; this stops the translation unit at the line that does. #error alone does not stop GCC or
// Clang, which go on compiling; a missing header does, so the #error is followed by one whose
// name repeats the hint.
// MSVC keeps __cplusplus at 199711L unless /Zc:__cplusplus is given; _MSVC_LANG holds the truth.
#if defined(_MSVC_LANG)
#define PROCPOOL_DETAIL_LANGUAGE_VERSION _MSVC_LANG
#else
#define PROCPOOL_DETAIL_LANGUAGE_VERSION __cplusplus
#endif

#if PROCPOOL_DETAIL_LANGUAGE_VERSION < 202002L
#error "procpool needs C++20 (-std=c++20)"
#include "procpool needs C++20 (-std=c++20)"
#endif
#undef PROCPOOL_DETAIL_LANGUAGE_VERSION
