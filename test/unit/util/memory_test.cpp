// Dropping the read-only segments of loaded objects: which pages qualify, and that the process
// keeps working (code and constants come back from the page cache) after a release.
#include <elf.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "pgwarden/util/memory.hpp"

namespace pgwarden::util {
namespace {

TEST(ReleaseUnusedPages, OnlyWholePagesOfReadOnlySegmentsOutsideRelro) {
  const uintptr_t base = 0x7f0000000000, page = 0x1000;
  const std::vector<ElfSegment> libc_like = {
      {PT_LOAD, PF_R, 0x0, 0x28000},              // headers and constants
      {PT_LOAD, PF_R | PF_X, 0x28000, 0x155a31},  // code; its last page is partly used
      {PT_LOAD, PF_R, 0x17e000, 0x56000},         // constants
      {PT_LOAD, PF_R | PF_W, 0x1d4e30, 0x13390},  // relocated data (RELRO) and data
      {PT_GNU_RELRO, PF_R, 0x1d4e30, 0x31d0},
      {PT_DYNAMIC, PF_R | PF_W, 0x1d6940, 0x1f0},
  };
  auto r = read_only_ranges(base, libc_like, false, page);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].begin, base);
  EXPECT_EQ(r[0].end, base + 0x28000);
  EXPECT_EQ(r[1].begin, base + 0x28000);
  EXPECT_EQ(r[1].end, base + 0x17d000) << "the partly used last page is left alone";
  EXPECT_EQ(r[2].begin, base + 0x17e000);
  EXPECT_EQ(r[2].end, base + 0x1d4000);

  // A read-only segment that starts mid-page keeps its first page; RELRO pages inside a
  // read-only segment (a linker that merged them) are cut out.
  const std::vector<ElfSegment> merged = {
      {PT_LOAD, PF_R, 0x10800, 0x10000},
      {PT_GNU_RELRO, PF_R, 0x14100, 0x2000},
  };
  r = read_only_ranges(base, merged, false, page);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].begin, base + 0x11000);
  EXPECT_EQ(r[0].end, base + 0x14000);
  EXPECT_EQ(r[1].begin, base + 0x17000);
  EXPECT_EQ(r[1].end, base + 0x20000);

  // Text relocations: the code was patched at load time, nothing is dropped.
  EXPECT_TRUE(read_only_ranges(base, libc_like, true, page).empty());
  // Writable or empty segments give nothing.
  EXPECT_TRUE(read_only_ranges(base, {{PT_LOAD, PF_R | PF_W, 0, 0x10000}, {PT_LOAD, PF_R, 0x20000, 0}}, false, page).empty());
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
  EXPECT_GE(r.objects, 2u);  // the test program and libc at least
  EXPECT_GT(r.ranges, 0u);
  EXPECT_GT(r.bytes, 0u);
  EXPECT_LT(after, before);
  // Code and constants are still there, read back from the files.
  EXPECT_EQ(pure_function(6), 43);
  EXPECT_EQ(std::string(kConstant), "a constant that lives in .rodata");
  EXPECT_EQ(std::to_string(12345), "12345");  // libstdc++ and libc code
}

}  // namespace
}  // namespace pgwarden::util
