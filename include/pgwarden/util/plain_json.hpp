#pragma once
// A JSON reader for the plain texts pgwarden reads most often (etcd's replies and watch
// events, member keys, the dynamic configuration): objects, arrays, numbers, true/false/null
// and strings of printable ASCII without escapes. Such a text is read in one pass straight into a document; nlohmann's
// lexer copies every character of every string one by one, and on an idle member, whose
// caches have gone cold over loop_wait, that costs more than the bytes are worth.
//
// Anything outside the subset (escapes, other bytes, numbers that do not fit their type, very
// deep nesting, bad JSON) gives nullopt: the caller then lets nlohmann
// parse the text, which decides. For every text it does read, the document is the one
// nlohmann::json::parse would build (the same value types, the last of duplicate keys).
#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>

namespace pgwarden::util {

std::optional<nlohmann::json> read_plain_json(std::string_view text);

// The plain value at the start of `text` (leading whitespace allowed), whatever follows it;
// `used` receives how many characters it took. nullopt as above, and when the value is cut off.
std::optional<nlohmann::json> read_plain_json_prefix(std::string_view text, size_t* used);

// read_plain_json, else nlohmann::json::parse without exceptions (a discarded value when the
// text is not one JSON value).
nlohmann::json parse_json_text(std::string_view text);

}  // namespace pgwarden::util
