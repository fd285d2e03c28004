#pragma once
// Shared helpers for the config unit tests: a minimal valid config as JSON (which is YAML),
// patched per test case.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"

namespace pgwarden::config::testing {

inline nlohmann::json minimal_doc() {
  return nlohmann::json::parse(R"({
    "scope": "demo",
    "name": "node1",
    "restapi": {"listen": "127.0.0.1:8008"},
    "etcd3": {"hosts": "127.0.0.1:2379"},
    "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/var/lib/pg/data"}
  })");
}

// minimal_doc() with `patch` merged in (JSON merge patch: null removes a key).
inline LoadResult load_patched(const nlohmann::json& patch, const util::Environment& env = {{"HOME", "/home/pg"}}) {
  auto doc = minimal_doc();
  doc.merge_patch(patch);
  return load_from_string(doc.dump(), env, "test.yaml");
}

inline std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

inline bool has_line(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

}  // namespace pgwarden::config::testing
