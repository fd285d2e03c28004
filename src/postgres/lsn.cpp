// WAL positions travel as "X/Y" text (two hex halves of a 64-bit byte position) in
// PostgreSQL and as plain integers in Patroni's DCS keys and REST answers.
#include <cstdio>
#include <string>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres {
namespace {

std::optional<uint64_t> parse_hex32(const std::string& s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace

std::optional<int64_t> parse_lsn(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto hi = parse_hex32(text.substr(0, slash));
  auto lo = parse_hex32(text.substr(slash + 1));
  if (!hi || !lo) return std::nullopt;
  uint64_t v = (*hi << 32) | *lo;
  // Positions beyond int64 are not reachable in practice; refuse rather than wrap negative.
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::string format_lsn(int64_t lsn) {
  auto v = static_cast<uint64_t>(lsn < 0 ? 0 : lsn);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(v >> 32), static_cast<unsigned>(v & 0xFFFFFFFFu));
  return buf;
}

}  // namespace pgwarden::postgres
