#pragma once
// Physical replication slots the primary keeps for its members (use_slots), as Patroni's
// SlotsHandler does for physical slots. Logical slots are never touched here.
#include <set>
#include <string>
#include <vector>

#include "pgwarden/postgres/postgres.hpp"
#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

// Patroni's slot_name_from_member_name: lower-cased, '-' and '.' become '_', any other
// character outside [a-z0-9_] becomes 'u' + its code point in decimal, zero-padded to 4
// digits ("{:04d}" — Patroni's format, not hex); truncated to 63 characters. Input is UTF-8.
std::string slot_name_from_member_name(const std::string& member_name);

// True for a name PostgreSQL accepts as a slot name: 1..63 of [a-z0-9_].
bool is_valid_slot_name(const std::string& name);

// Names of the physical (non-temporary) slots on the server `pg` manages, sorted.
Result<std::vector<std::string>> list_physical_slots(const Postgres& pg);

// The state query's slot list: "name+" (active) or "name-" entries, comma-separated, sorted
// ("" when there are none). Slot names are [a-z0-9_] only, so no quoting is needed; an entry
// that is not a valid slot name with its mark is skipped.
std::vector<PhysicalSlot> parse_slot_list(const std::string& text);

// What reaching `wanted` (valid slot names) from `listed` takes: the slots to create, and the
// listed slots that are neither wanted nor active, to drop.
struct SlotChanges {
  std::vector<std::string> drop, create;
  bool empty() const { return drop.empty() && create.empty(); }
};
SlotChanges plan_slot_changes(const std::set<std::string>& wanted, const std::vector<PhysicalSlot>& listed);

// Creates the missing slots of `wanted` (reserving WAL immediately, so a member that starts
// streaming later finds everything it needs) and drops physical slots not in `wanted` that
// are not active. An active slot is never dropped: its standby would lose its WAL. Keeps
// going after an error; Failed then lists them all. `listed`: the slots as the caller has
// just seen them (the state query lists them), so that when nothing is to change no query
// runs; without it they are listed first. Drops and creates check again on the server.
Status sync_physical_slots(const Postgres& pg, const std::vector<std::string>& wanted,
                           const std::vector<PhysicalSlot>* listed = nullptr);

}  // namespace pgwarden::postgres
