#include "pgwarden/util/memory.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace pgwarden::util {
namespace {

struct Mapping {
  unsigned long start = 0, end = 0;
  std::string perms, path;
  size_t rss_kb = 0, anonymous_kb = 0;
};

// /proc/self/smaps: a header line per mapping ("start-end perms offset dev inode [path]")
// followed by "Key: value kB" lines.
std::vector<Mapping> read_smaps() {
  std::vector<Mapping> out;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long start = 0, end = 0;
    char perms[8] = {0};
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &consumed) >= 3 &&
        line.find('-') < line.find(' ')) {
      Mapping m;
      m.start = start;
      m.end = end;
      m.perms = perms;
      if (consumed > 0 && static_cast<size_t>(consumed) <= line.size()) m.path = line.substr(consumed);
      out.push_back(std::move(m));
      continue;
    }
    if (out.empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    size_t kb = std::strtoul(line.c_str() + colon + 1, nullptr, 10);
    if (key == "Rss") out.back().rss_kb = kb;
    else if (key == "Anonymous") out.back().anonymous_kb = kb;
  }
  return out;
}

}  // namespace

bool droppable_mapping(const std::string& perms, const std::string& path, size_t anonymous_kb) {
  // Only mappings of a file ("/..."), never written by us (no 'w', no private page), and not
  // the kernel's [vdso]/[vvar] or anything deleted/replaced under us.
  if (perms.size() < 4 || perms[0] != 'r' || perms[1] == 'w' || perms[3] != 'p') return false;
  if (path.empty() || path[0] != '/' || path.find(" (deleted)") != std::string::npos) return false;
  return anonymous_kb == 0;
}

PageRelease release_unused_pages() {
  PageRelease out;
  auto maps = read_smaps();
  out.ok = !maps.empty();
  for (const auto& m : maps) {
    if (m.rss_kb == 0 || !droppable_mapping(m.perms, m.path, m.anonymous_kb)) continue;
    if (madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) == 0) {
      ++out.mappings;
      out.resident_kb += m.rss_kb;
    }
  }
  malloc_trim(0);
  return out;
}

}  // namespace pgwarden::util
