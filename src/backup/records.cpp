// Backup records: request checks, labels, their JSON, and the history merged from
// `pgbackrest info --output=json`.
#include <cmath>
#include <ctime>
#include <map>

#include "pgwarden/backup/backup_api.hpp"

namespace pgwarden::backup {

using nlohmann::json;

std::string status_name(BackupStatus s) {
  switch (s) {
    case BackupStatus::kRunning:
      return "RUNNING";
    case BackupStatus::kFinished:
      return "FINISHED";
    case BackupStatus::kFailed:
      return "FAILED";
  }
  return "FAILED";
}

BackupRequest parse_backup_request(const std::string& body) {
  BackupRequest r;
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return r;
  auto refuse = [&](const std::string& error) {
    r.status = 400;
    r.error = error;
    return r;
  };
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) return refuse("the body is not valid JSON");
  if (!doc.is_object()) return refuse("the body must be a JSON object, e.g. {\"type\": \"full\"}");
  if (auto it = doc.find("command"); it != doc.end()) {
    if (!it->is_string() || it->get<std::string>() != "backup")
      return refuse("unsupported command " + it->dump() + "; only \"backup\" is supported");
  }
  if (auto it = doc.find("type"); it != doc.end()) {
    std::string type = it->is_string() ? it->get<std::string>() : "";
    if (type != "full" && type != "incr" && type != "diff")
      return refuse("unsupported backup type " + it->dump() + "; expected \"full\", \"incr\" or \"diff\"");
    r.type = type;
  }
  return r;
}

namespace {

std::string strftime_utc(double epoch, const char* format) {
  std::time_t t = static_cast<std::time_t>(std::floor(epoch));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

double number_or(const json& obj, const char* key, double fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string string_or_empty(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string pgbackrest_label(const BackupRecord& b) { return string_or_empty(b.pgbackrest, "label"); }

}  // namespace

std::string make_label(double epoch, const std::set<std::string>& taken) {
  const std::string base = strftime_utc(epoch, "%Y%m%d%H%M%S");
  std::string label = base;
  for (int n = 1; taken.count(label); ++n) label = base + "-" + std::to_string(n);
  return label;
}

std::string iso8601(double epoch) { return strftime_utc(epoch, "%Y-%m-%dT%H:%M:%S+00:00"); }

json render_details(const BackupRecord& b, double now) {
  const double end = b.finished.value_or(now);
  json d = json::object();
  d["age"] = now - b.started;
  d["duration"] = std::max(0.0, end - b.started);
  d["finished"] = b.finished ? json(iso8601(*b.finished)) : json(nullptr);
  d["label"] = b.label;
  d["pgbackrest"] = b.pgbackrest.is_object() ? b.pgbackrest : json::object();
  d["pid"] = b.pid ? json(*b.pid) : json(nullptr);
  d["returncode"] = b.returncode ? json(*b.returncode) : json(nullptr);
  d["started"] = iso8601(b.started);
  d["status"] = status_name(b.status);
  d["type"] = b.type;
  d["stderr"] = b.stderr_tail;
  return d;
}

json render_summary(const BackupRecord& b) {
  std::string plabel = pgbackrest_label(b);
  return {{"label", b.label},
          {"status", status_name(b.status)},
          {"started", iso8601(b.started)},
          {"finished", b.finished ? json(iso8601(*b.finished)) : json(nullptr)},
          {"pgbackrest", {{"label", plabel.empty() ? json(nullptr) : json(plabel)}}}};
}

std::string dump_pretty(const json& doc) {
  // nlohmann's objects are ordered maps (sorted keys); ensure_ascii as Python's default.
  return doc.dump(4, ' ', true) + "\n";
}

bool merge_info(std::vector<BackupRecord>& history, const json& info, const std::string& stanza) {
  if (!info.is_array()) return false;
  const json* found = nullptr;
  for (const auto& s : info)
    if (s.is_object() && string_or_empty(s, "name") == stanza) found = &s;
  if (!found) return false;
  json entries = json::array();
  if (auto it = found->find("backup"); it != found->end() && it->is_array()) entries = *it;

  std::set<std::string> in_repo;
  for (const auto& e : entries)
    if (auto l = string_or_empty(e, "label"); !l.empty()) in_repo.insert(l);
  // Backups expired from the repository leave the history unless this process ran them.
  std::erase_if(history, [&](const BackupRecord& b) { return !b.ours && !in_repo.count(pgbackrest_label(b)); });

  std::set<std::string> taken;
  for (const auto& b : history) taken.insert(b.label);
  for (const auto& e : entries) {
    const std::string plabel = string_or_empty(e, "label");
    if (plabel.empty()) continue;
    const json& ts = e.contains("timestamp") ? e["timestamp"] : json();
    const double start = number_or(ts, "start", 0), stop = number_or(ts, "stop", start);
    const std::string type = string_or_empty(e, "type");

    BackupRecord* match = nullptr;
    for (auto& b : history)
      if (pgbackrest_label(b) == plabel) match = &b;
    // One of ours not matched yet: same type, started within its run (a second of slack
    // either side, labels and timestamps are whole seconds).
    for (auto it = history.begin(); !match && it != history.end(); ++it) {
      auto& b = *it;
      if (!b.ours || !pgbackrest_label(b).empty() || b.type != type) continue;
      const double end = b.finished.value_or(start + 1);
      if (start >= std::floor(b.started) - 1 && start <= end + 1) match = &b;
    }
    if (match) {
      match->pgbackrest = e;
      continue;
    }
    BackupRecord r;
    r.label = make_label(start, taken);
    taken.insert(r.label);
    r.type = type;
    r.status = BackupStatus::kFinished;
    r.started = start;
    r.finished = stop;
    r.pgbackrest = e;
    history.push_back(std::move(r));
  }
  return true;
}

const BackupRecord* find_backup(const std::vector<BackupRecord>& backups, const std::string& key) {
  const BackupRecord* best = nullptr;
  if (key == "latest") {
    for (const auto& b : backups)
      if (!best || b.started > best->started || (b.started == best->started && b.label > best->label)) best = &b;
    return best;
  }
  for (const auto& b : backups)
    if (b.label == key) return &b;
  for (const auto& b : backups)
    if (pgbackrest_label(b) == key) return &b;
  return nullptr;
}

}  // namespace pgwarden::backup
