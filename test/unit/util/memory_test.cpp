// Dropping read-only file mappings: which mappings qualify, and that the process keeps
// working (code and constants come back from the page cache) after a release.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "pgwarden/util/memory.hpp"

namespace pgwarden::util {
namespace {

TEST(ReleaseUnusedPages, OnlyUnmodifiedReadOnlyFileMappings) {
  struct Case {
    const char* perms;
    const char* path;
    size_t anonymous_kb;
    bool droppable;
  };
  const Case cases[] = {
      {"r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, true},       // code
      {"r--p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, true},       // constants
      {"r--p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 8, false},      // RELRO: relocated, private
      {"rw-p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, false},      // data
      {"r-xs", "/dev/shm/x", 0, false},                                // shared mapping
      {"r-xp", "[vdso]", 0, false},                                    // the kernel's
      {"r--p", "", 0, false},                                          // anonymous
      {"r-xp", "/usr/bin/pgwarden (deleted)", 0, false},               // replaced binary
      {"---p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, false},      // guard
  };
  for (const auto& c : cases)
    EXPECT_EQ(droppable_mapping(c.perms, c.path, c.anonymous_kb), c.droppable) << c.perms << " " << c.path;
}

int pure_function(int x) { return x * 7 + 1; }
const char kConstant[] = "a constant that lives in .rodata";

TEST(ReleaseUnusedPages, ProcessKeepsWorkingAndResidentSetShrinks) {
  auto rss_kb = [] {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1L;
  };
  long before = rss_kb();
  PageRelease r = release_unused_pages();
  long after = rss_kb();
  ASSERT_TRUE(r.ok);
  EXPECT_GT(r.mappings, 0u);
  EXPECT_GT(r.resident_kb, 0u);
  EXPECT_LT(after, before);
  // Code and constants are still there, read back from the files.
  EXPECT_EQ(pure_function(6), 43);
  EXPECT_EQ(std::string(kConstant), "a constant that lives in .rodata");
  EXPECT_EQ(std::to_string(12345), "12345");  // libstdc++ and libc code
}

}  // namespace
}  // namespace pgwarden::util
