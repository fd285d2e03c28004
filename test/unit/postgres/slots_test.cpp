#include <gtest/gtest.h>

#include "pgwarden/postgres/slots.hpp"

namespace pgwarden::postgres {
namespace {

// Expected values produced by Patroni 3.0.2's patroni.dcs.slot_name_from_member_name.
TEST(SlotName, MatchesPatroni) {
  const std::vector<std::pair<std::string, std::string>> table{
      {"node-1.example", "node_1_example"},
      {"Node-1", "node_1"},
      {"timescaledb-0", "timescaledb_0"},
      {"already_ok_123", "already_ok_123"},
      {"a b", "au0032b"},
      {"a@b:c", "au0064bu0058c"},
      {"\xC3\xBCmlaut", "u0252mlaut"},               // ümlaut
      {"\xC3\x84\xC3\x96\xC3\x9C", "u0228u0246u0252"},  // ÄÖÜ lower-cased first
      {"\xC4\xB0x", "iu0775x"},                       // İ lowers to i + combining dot
      {"\xE6\x97\xA5\xE6\x9C\xAC", "u26085u26412"},   // 日本: decimal, more than 4 digits
      {"\xF0\x9F\x98\x80", "u128512"},                // emoji
      {"\xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0", "u1084u1086u1089u1082u1074u1072"},  // Москва
  };
  for (const auto& [in, want] : table) EXPECT_EQ(slot_name_from_member_name(in), want) << in;
}

TEST(SlotName, TruncatedTo63) {
  EXPECT_EQ(slot_name_from_member_name(std::string(70, 'x')), std::string(63, 'x'));
  // Truncation happens after the expansion, even in the middle of a uNNNN.
  std::string accents;
  for (int i = 0; i < 20; ++i) accents += "\xC3\xA9";  // é
  std::string want = "ab";
  for (int i = 0; i < 12; ++i) want += "u0233";
  want += "u";
  EXPECT_EQ(slot_name_from_member_name("ab" + accents), want);
  EXPECT_EQ(want.size(), 63u);
}

TEST(SlotName, InvalidUtf8StillMapsToAValidName) {
  auto s = slot_name_from_member_name(std::string("a\xFF" "b"));
  EXPECT_EQ(s, "au0255b");
  EXPECT_TRUE(is_valid_slot_name(s));
}

TEST(SlotName, Validity) {
  EXPECT_TRUE(is_valid_slot_name("node_1"));
  EXPECT_FALSE(is_valid_slot_name(""));
  EXPECT_FALSE(is_valid_slot_name("Node"));
  EXPECT_FALSE(is_valid_slot_name("a-b"));
  EXPECT_FALSE(is_valid_slot_name(std::string(64, 'a')));
  EXPECT_TRUE(is_valid_slot_name(std::string(63, 'a')));
}

TEST(SlotList, ParsesTheStateQueryForm) {
  EXPECT_EQ(parse_slot_list(""), std::vector<PhysicalSlot>{});
  EXPECT_EQ(parse_slot_list("node2+,node3-"), (std::vector<PhysicalSlot>{{"node2", true}, {"node3", false}}));
  EXPECT_EQ(parse_slot_list("a_1+"), (std::vector<PhysicalSlot>{{"a_1", true}}));
}

TEST(SlotList, SkipsWhatIsNotASlotWithItsMark) {
  // No mark, an unknown mark, an empty name, a name PostgreSQL would refuse, empty entries.
  EXPECT_EQ(parse_slot_list("plain,x*,+,Bad-,,ok-"), (std::vector<PhysicalSlot>{{"ok", false}}));
}

// What sync_physical_slots does with a listed set of slots: a table of cases.
TEST(SlotChanges, Plan) {
  struct Case {
    const char* what;
    std::set<std::string> wanted;
    std::vector<PhysicalSlot> listed;
    std::vector<std::string> drop, create;
  };
  const std::vector<Case> cases = {
      {"nothing either side", {}, {}, {}, {}},
      {"all there", {"a", "b"}, {{"a", false}, {"b", true}}, {}, {}},
      {"missing ones created", {"a", "b", "c"}, {{"b", false}}, {}, {"a", "c"}},
      {"unwanted idle slot dropped", {"a"}, {{"a", false}, {"old", false}}, {"old"}, {}},
      {"unwanted active slot kept", {"a"}, {{"a", false}, {"busy", true}}, {}, {}},
      {"both at once", {"new"}, {{"gone", false}, {"busy", true}}, {"gone"}, {"new"}},
  };
  for (const auto& c : cases) {
    SlotChanges got = plan_slot_changes(c.wanted, c.listed);
    EXPECT_EQ(got.drop, c.drop) << c.what;
    EXPECT_EQ(got.create, c.create) << c.what;
    EXPECT_EQ(got.empty(), c.drop.empty() && c.create.empty()) << c.what;
  }
}

}  // namespace
}  // namespace pgwarden::postgres
