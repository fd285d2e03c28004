#include "pgwarden/util/plain_json.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace pgwarden::util {
namespace {

using nlohmann::json;

// Equal values with equal types at every node (json's == takes 1 and 1u, or 1 and 1.0, as one).
::testing::AssertionResult same_document(const json& a, const json& b) {
  if (a.type() != b.type())
    return ::testing::AssertionFailure() << a.dump() << " (" << a.type_name() << ") vs " << b.dump() << " ("
                                         << b.type_name() << ")";
  if (a.is_object()) {
    if (a.size() != b.size()) return ::testing::AssertionFailure() << a.dump() << " vs " << b.dump();
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other == b.end()) return ::testing::AssertionFailure() << "no " << it.key() << " in " << b.dump();
      if (auto r = same_document(it.value(), *other); !r) return r;
    }
    return ::testing::AssertionSuccess();
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return ::testing::AssertionFailure() << a.dump() << " vs " << b.dump();
    for (size_t i = 0; i < a.size(); ++i)
      if (auto r = same_document(a[i], b[i]); !r) return r;
    return ::testing::AssertionSuccess();
  }
  if (a.is_discarded()) return ::testing::AssertionSuccess();
  if (a != b) return ::testing::AssertionFailure() << a.dump() << " vs " << b.dump();
  return ::testing::AssertionSuccess();
}

json nlohmann_parse(const std::string& text) { return json::parse(text, nullptr, false); }

// Texts as etcd's gateway and pgwarden's member keys have them.
const std::vector<std::string> kPlainTexts = {
    R"({"result":{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437",)"
    R"("revision":"105","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvYmF0bWFuL3N0YXR1cw==",)"
    R"("create_revision":"12","mod_revision":"105","version":"40","value":"eyJvcHRpbWUiOjEyMzR9"}}]}})",
    R"({"header":{"revision":"7"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"7"}}}]})",
    R"({"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",)"
    R"("state":"running","role":"replica","version":"3.0.2","xlog_location":50331648,"timeline":1,)"
    R"("tags":{"nofailover":false,"clonefrom":true,"noloadbalance":null}})",
    "{}", "[]", " { } ", "\t[ 1 ,\n 2 ]\r\n", "[[[[]]]]", R"({"a":{"b":{"c":[1,[2,{"d":"e"}]]}}})",
    "0", "-0", "7", "-7", "123456789", "18446744073709551615", "9223372036854775807", "-9223372036854775808",
    "true", "false", "null", R"("")", R"("a b ~ } ] , : {")", R"({"":""})",
    R"({"a":1,"a":2})", R"({"k":[true,false,null,0,-1,"x"]})",
    "1.5", "-2.25", "0.9", "-0.0", "1e5", "1E-2", "2.5e+3", "0.1e-1", "1e308",
    R"({"parameters":{"checkpoint_completion_target":0.9,"max_connections":100}})",
};

// Texts outside the subset: nlohmann decides (a value or a discarded one).
const std::vector<std::string> kOtherTexts = {
    R"("tab\there")", R"("quote \" inside")", R"("\u00e9")", "\"caf\xc3\xa9\"", "\"bad \xff byte\"",
    "\"ctl \x01 char\"", "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890", "1e400", "-1e400", "1e-400",
    "1.", ".5", "1.e5", "01.5", "1e", "1e+", "-.5", "0x10", "01", "-", "--1", "+1", ".5", "tru", "nul", "falsey", "NaN", "Infinity", R"({"a":1,})", "[1,]", R"({"a" 1})",
    R"({a:1})", R"({"a":1}})", R"({"a":1} x)", "{} {}", "", "   ", "{", "[", R"({"a":)", R"("open)", "'x'",
    std::string(100, '[') + std::string(100, ']'), std::string(70, '[') + std::string(70, ']'),
};

TEST(PlainJson, ReadsThePlainTextsAsNlohmannWould) {
  for (const auto& text : kPlainTexts) {
    auto plain = read_plain_json(text);
    ASSERT_TRUE(plain.has_value()) << text;
    json want = nlohmann_parse(text);
    ASSERT_FALSE(want.is_discarded()) << text;
    EXPECT_TRUE(same_document(*plain, want)) << text;
  }
  // Integers keep nlohmann's types, duplicate keys its choice.
  EXPECT_TRUE(read_plain_json("7")->is_number_unsigned());
  EXPECT_TRUE(read_plain_json("-7")->is_number_integer());
  EXPECT_EQ((*read_plain_json(R"({"a":1,"a":2})"))["a"], 2);
}

TEST(PlainJson, LeavesEverythingElseToNlohmann) {
  for (const auto& text : kOtherTexts) {
    EXPECT_FALSE(read_plain_json(text).has_value()) << text;
    EXPECT_TRUE(same_document(parse_json_text(text), nlohmann_parse(text))) << text;
    EXPECT_EQ(parse_json_text(text).is_discarded(), nlohmann_parse(text).is_discarded()) << text;
  }
}

TEST(PlainJson, APrefixIsReadUpToItsEnd) {
  size_t used = 0;
  auto first = read_plain_json_prefix(R"(  {"a":[1,{"b":"}"}]}{"next":1} trailing)", &used);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, json::parse(R"({"a":[1,{"b":"}"}]})"));
  EXPECT_EQ(used, std::string(R"(  {"a":[1,{"b":"}"}]})").size());
  used = 99;
  EXPECT_FALSE(read_plain_json_prefix(R"({"a":[1,{"b":"}"}])", &used)) << "cut off";
  EXPECT_FALSE(read_plain_json_prefix(R"({"a":"esc\"aped"} {})", &used)) << "not plain";
  EXPECT_FALSE(read_plain_json_prefix("", &used));
  EXPECT_EQ(used, 99u) << "untouched when nothing was read";
}

// Every text, whichever path reads it, gives nlohmann's document: the plain texts with bytes
// changed, dropped and doubled at random (a fixed seed, so a failure repeats).
TEST(PlainJson, MutatedTextsGiveNlohmannsDocument) {
  std::mt19937 rng(20261207);
  const std::string alphabet = "{}[]\",:0123456789-.eE \\tfnrul\x01\xc3\xa9";
  int plain_read = 0, discarded = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string text = kPlainTexts[rng() % kPlainTexts.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0: text[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: text.erase(at, 1); break;
        default: text.insert(at, 1, text[at]); break;
      }
    }
    const json want = nlohmann_parse(text);
    const json got = parse_json_text(text);
    ASSERT_EQ(got.is_discarded(), want.is_discarded()) << text;
    ASSERT_TRUE(same_document(got, want)) << text;
    if (read_plain_json(text)) ++plain_read;
    if (want.is_discarded()) ++discarded;
  }
  // Both paths were taken, and bad texts were among them.
  EXPECT_GT(plain_read, 100);
  EXPECT_GT(discarded, 1000);
}

}  // namespace
}  // namespace pgwarden::util
