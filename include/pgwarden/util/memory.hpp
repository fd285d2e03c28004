#pragma once
// Giving back memory an idle daemon no longer touches. pgwarden's resident set after start-up
// is mostly code pages of shared libraries that ran once (library constructors, TLS and LDAP
// set-up that libpq pulls in, initdb and bootstrap paths); the kernel keeps them in the page
// cache for every process, but they count in our RSS until our mapping of them is dropped.
#include <cstddef>
#include <string>

namespace pgwarden::util {

// What release_unused_pages() found in /proc/self/smaps.
struct PageRelease {
  size_t mappings = 0;       // read-only file mappings dropped
  size_t resident_kb = 0;    // their resident size before
  bool ok = false;           // smaps could be read
};

// Drops this process's page-table entries for read-only, file-backed mappings that hold no
// private (copy-on-write) page: code and constants of the executable and shared libraries,
// exactly as the file has them, so the kernel maps them back from the page cache on next use
// (a minor fault, no I/O). Mappings with private pages (relocated data) are never touched.
// Then returns free heap to the kernel (malloc_trim). Safe to call at any time from any thread.
PageRelease release_unused_pages();

// The same decision for one /proc/<pid>/smaps entry, for tests: `perms` as in maps ("r-xp"),
// `path` the mapped file ("" or "[heap]" etc. for others), `anonymous_kb` its Anonymous field.
bool droppable_mapping(const std::string& perms, const std::string& path, size_t anonymous_kb);

}  // namespace pgwarden::util
