// Physical replication slots over libpq (Patroni's SlotsHandler, physical part) and the
// member-name -> slot-name mapping.
#include "pgwarden/postgres/slots.hpp"

#include <algorithm>
#include <clocale>
#include <cstdio>
#include <cwctype>
#include <locale.h>
#include <optional>
#include <set>

#include "pq_connect.hpp"

namespace pgwarden::postgres {
namespace {

// Decodes one UTF-8 sequence at `i` (advancing it); an invalid byte stands for itself, as a
// Latin-1 character, so odd input still maps to something stable.
char32_t next_code_point(const std::string& s, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b = byte(i);
  int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (len <= 1 || i + len > s.size()) {
    ++i;
    return b;
  }
  char32_t cp = b & (0xFF >> (len + 1));
  for (int k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return b;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

// Python's str.lower(): the simple Unicode mapping from the C.UTF-8 locale's tables, plus the
// one unconditional multi-character mapping (U+0130 -> "i" U+0307).
void append_lower(char32_t cp, std::u32string& out) {
  if (cp == 0x130) {
    out += U'i';
    out += char32_t{0x307};
    return;
  }
  if (cp < 0x80) {
    out += (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return;
  }
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (utf8 != static_cast<locale_t>(nullptr) && cp <= 0x10FFFF)
    cp = static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), utf8));
  out += cp;
}

const char* kListSlots =
    "SELECT slot_name, active FROM pg_catalog.pg_replication_slots "
    "WHERE slot_type = 'physical' AND NOT temporary ORDER BY slot_name";

// WHERE NOT EXISTS: another pgwarden (or a human) may have created it since we listed.
const char* kCreateSlot =
    "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) "
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)";

// `NOT active` again at drop time: a standby may have connected since we listed.
const char* kDropSlot =
    "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
    "WHERE slot_name = $1 AND slot_type = 'physical' AND NOT temporary AND NOT active";

Result<std::vector<PhysicalSlot>> list_rows(PGconn* c) {
  auto r = pq::exec(c, kListSlots);
  if (!r) return Status::Failed("listing replication slots: " + r.status().message());
  std::vector<PhysicalSlot> out;
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out.push_back({PQgetvalue(r->get(), i, 0), PQgetvalue(r->get(), i, 1)[0] == 't'});
  return out;
}

}  // namespace

std::string slot_name_from_member_name(const std::string& member_name) {
  std::u32string lowered;
  for (size_t i = 0; i < member_name.size();) append_lower(next_code_point(member_name, i), lowered);
  std::string out;
  for (char32_t c : lowered) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
      out += static_cast<char>(c);
    } else if (c == '-' || c == '.') {
      out += '_';
    } else {
      char buf[16];
      std::snprintf(buf, sizeof buf, "u%04u", static_cast<unsigned>(c));
      out += buf;
    }
    if (out.size() >= 63) break;
  }
  if (out.size() > 63) out.resize(63);
  return out;
}

bool is_valid_slot_name(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

Result<std::vector<std::string>> list_physical_slots(const Postgres& pg) {
  std::vector<std::string> names;
  auto st = pg.with_kept_connection([&](PGconn* c) -> Status {
    auto rows = list_rows(c);
    if (!rows) return rows.status();
    names.clear();
    for (const auto& r : *rows) names.push_back(r.name);
    return Status::Ok();
  });
  if (!st) return st;
  return names;
}

std::vector<PhysicalSlot> parse_slot_list(const std::string& text) {
  std::vector<PhysicalSlot> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    if (end - start >= 2) {
      const char mark = text[end - 1];
      std::string name = text.substr(start, end - start - 1);
      if ((mark == '+' || mark == '-') && is_valid_slot_name(name)) out.push_back({std::move(name), mark == '+'});
    }
    start = end + 1;
  }
  return out;
}

SlotChanges plan_slot_changes(const std::set<std::string>& wanted, const std::vector<PhysicalSlot>& listed) {
  SlotChanges out;
  std::set<std::string> have;
  for (const auto& slot : listed) {
    have.insert(slot.name);
    if (!wanted.count(slot.name) && !slot.active) out.drop.push_back(slot.name);
  }
  for (const auto& name : wanted)
    if (!have.count(name)) out.create.push_back(name);
  return out;
}

// On the kept connection: the leader runs this every cycle.
Status sync_physical_slots(const Postgres& pg, const std::vector<std::string>& wanted,
                           const std::vector<PhysicalSlot>* listed) {
  std::vector<std::string> invalid;
  std::set<std::string> want;
  for (const auto& name : wanted) {
    if (is_valid_slot_name(name)) want.insert(name);
    else invalid.push_back("invalid slot name \"" + name + "\"");
  }
  std::vector<std::string> errors;
  std::optional<SlotChanges> planned;
  if (listed) planned = plan_slot_changes(want, *listed);
  if (!planned || !planned->empty()) {
    auto st = pg.with_kept_connection([&](PGconn* c) -> Status {
      if (!listed) {
        auto rows = list_rows(c);
        if (!rows) return rows.status();
        planned = plan_slot_changes(want, *rows);
      }
      errors.clear();
      for (const auto& name : planned->drop)
        if (auto d = pq::exec(c, kDropSlot, {name}); !d)
          errors.push_back("dropping slot " + name + ": " + d.status().message());
      for (const auto& name : planned->create)
        if (auto r = pq::exec(c, kCreateSlot, {name}); !r)
          errors.push_back("creating slot " + name + ": " + r.status().message());
      return Status::Ok();
    });
    if (!st) return st;
  }
  errors.insert(errors.begin(), invalid.begin(), invalid.end());
  if (errors.empty()) return Status::Ok();
  std::string msg;
  for (const auto& e : errors) msg += (msg.empty() ? "" : "; ") + e;
  return Status::Failed(msg);
}

}  // namespace pgwarden::postgres
