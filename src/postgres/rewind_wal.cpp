#include "pgwarden/postgres/rewind_wal.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::postgres {

namespace fs = std::filesystem;

namespace {

bool is_segment_name(const std::string& name) {
  if (name.size() != 24) return false;
  for (char c : name)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::islower(static_cast<unsigned char>(c))) return false;
  return true;
}

// The value after "<key>: " on the line that starts with key, or "".
std::string label_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
  return "";
}

}  // namespace

std::string wal_file_name(uint32_t timeline, uint64_t segment, uint64_t wal_segment_size) {
  const uint64_t per_id = 0x100000000ULL / wal_segment_size;
  char buf[25];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<unsigned>(segment / per_id),
                static_cast<unsigned>(segment % per_id));
  return buf;
}

std::optional<RewindLabel> parse_backup_label(const std::string& text, uint64_t wal_segment_size) {
  if (wal_segment_size == 0 || 0x100000000ULL % wal_segment_size != 0) return std::nullopt;
  // "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)"
  const std::string start = label_value(text, "START WAL LOCATION");
  const auto open = start.find("(file ");
  if (open == std::string::npos || start.size() < open + 6 + 24) return std::nullopt;
  const std::string file = start.substr(open + 6, 24);
  const auto start_lsn = parse_lsn(start.substr(0, start.find(' ')));
  const auto checkpoint = parse_lsn(label_value(text, "CHECKPOINT LOCATION"));
  if (!is_segment_name(file) || !start_lsn || !checkpoint || *checkpoint < *start_lsn) return std::nullopt;
  RewindLabel out;
  out.timeline = static_cast<uint32_t>(std::stoul(file.substr(0, 8), nullptr, 16));
  out.start_segment = static_cast<uint64_t>(*start_lsn) / wal_segment_size;
  out.checkpoint_lsn = *checkpoint;
  // The file name and the location must agree, or this is not a label we understand.
  if (wal_file_name(out.timeline, out.start_segment, wal_segment_size) != file) return std::nullopt;
  return out;
}

RewindWalStash::RewindWalStash(const std::string& data_dir) : data_dir_(data_dir), wal_dir_(data_dir + "/pg_wal") {
  std::error_code ec;
  const fs::path data = fs::canonical(data_dir, ec);
  if (ec) return;
  const fs::path wal = fs::canonical(wal_dir_, ec);
  if (ec) return;
  fs::path parent = wal.parent_path();
  if (parent == data) parent = data.parent_path();
  stash_ = (parent / ("." + data.filename().string() + ".rewind-wal")).string();
  fs::remove_all(stash_, ec);  // left over from an interrupted rewind
  if (!fs::create_directory(stash_, ec) || ec) {
    spdlog::debug("rewind: cannot create {}: {}", stash_, ec.message());
    stash_.clear();
    return;
  }
  for (const auto& e : fs::directory_iterator(wal, ec)) {
    const std::string name = e.path().filename().string();
    if (!is_segment_name(name) || !e.is_regular_file()) continue;
    if (::link(e.path().c_str(), (fs::path(stash_) / name).c_str()) == 0) ++saved_;
    else spdlog::debug("rewind: cannot link {} aside", e.path().string());
  }
}

RewindWalStash::~RewindWalStash() {
  if (stash_.empty()) return;
  std::error_code ec;
  fs::remove_all(stash_, ec);
}

std::vector<std::string> RewindWalStash::put_back(uint64_t wal_segment_size) const {
  std::vector<std::string> out;
  if (stash_.empty() || saved_ == 0 || wal_segment_size == 0) return out;
  std::ifstream f(data_dir_ + "/backup_label");
  if (!f) return out;
  std::stringstream ss;
  ss << f.rdbuf();
  auto label = parse_backup_label(ss.str(), wal_segment_size);
  if (!label) {
    spdlog::warn("rewind: cannot read the start location in {}/backup_label", data_dir_);
    return out;
  }
  const uint64_t last = static_cast<uint64_t>(label->checkpoint_lsn) / wal_segment_size;
  for (uint64_t seg = label->start_segment; seg <= last; ++seg) {
    const std::string name = wal_file_name(label->timeline, seg, wal_segment_size);
    const fs::path target = fs::path(wal_dir_) / name, kept = fs::path(stash_) / name;
    std::error_code ec;
    if (fs::exists(target, ec) || !fs::exists(kept, ec)) continue;
    if (::link(kept.c_str(), target.c_str()) == 0) out.push_back(name);
    else spdlog::warn("rewind: cannot put {} back into {}", name, wal_dir_);
  }
  return out;
}

}  // namespace pgwarden::postgres
