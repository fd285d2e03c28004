#pragma once
// The only place HA rules live: a pure, deterministic function from a snapshot to a
// decision. No I/O, no clock reads, no globals.
#include "pgwarden/ha/decision.hpp"
#include "pgwarden/ha/snapshot.hpp"

namespace pgwarden::ha {

Decision decide(const Snapshot& s);

}  // namespace pgwarden::ha
