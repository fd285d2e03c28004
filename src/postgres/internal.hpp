#pragma once
// Internal (src/postgres only): small helpers the files of this module share.
#include <sys/types.h>

#include <string>

#include "pgwarden/util/status.hpp"

namespace pgwarden::postgres {

// The end of a tool's output for an error or log line: its last `n` characters, without the
// trailing newline.
inline std::string tail(const std::string& s, size_t n = 2000) {
  std::string t = s.size() <= n ? s : s.substr(s.size() - n);
  t.erase(t.find_last_not_of(" \t\r\n") + 1);
  return t;
}

// Temp file + fsync + rename, so PostgreSQL (or a crash) never sees half a file. (files.cpp)
Status write_atomically(const std::string& path, const std::string& content, mode_t mode);

}  // namespace pgwarden::postgres
