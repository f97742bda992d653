// What the schedulers' resume-snapshot tests (tests/schedulers/*_state_test.cc) share: loading a
// fresh scheduler from the text of another's state, and the message a bad state throws.
//
// Example:
//   AshaScheduler loaded(options);
//   LoadFromTextOf(original, loaded);   // the text reads back to the same text
//   EXPECT_EQ(LoadError(fresh, bad_state), "snapshot: asha.stopped: missing");
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "schedulers/scheduler.h"

namespace tune {

// `fresh` (made from the same options, no call yet) loads the JSON text of `original`'s state,
// which must then give back that same text.
inline void LoadFromTextOf(const Scheduler& original, Scheduler& fresh) {
  const std::string text = original.SaveState()->dump();
  fresh.LoadState(Json::parse(text));
  ASSERT_EQ(fresh.SaveState()->dump(), text);
}

// The std::runtime_error that `scheduler.LoadState(state)` throws, or "(no error)".
inline std::string LoadError(Scheduler& scheduler, const Json& state) {
  try {
    scheduler.LoadState(state);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace tune
