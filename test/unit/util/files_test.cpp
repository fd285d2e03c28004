// The POSIX file helpers the HA loop uses every cycle: each answer checked against a real
// file, directory, symbolic link and missing path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "pgwarden/util/files.hpp"
#include "support/harness.hpp"

namespace pgwarden::util {
namespace {

void write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

TEST(Files, ReadSmallFile) {
  test::TempDir dir("pgwarden-files");
  write(dir.path() + "/f", std::string("line one\nsecond\0line", 20));
  EXPECT_EQ(read_small_file(dir.path() + "/f"), std::string("line one\nsecond\0line", 20));
  write(dir.path() + "/empty", "");
  EXPECT_EQ(read_small_file(dir.path() + "/empty"), "");
  EXPECT_EQ(read_small_file(dir.path() + "/missing"), std::nullopt);
  EXPECT_EQ(read_small_file(dir.path()), std::nullopt) << "a directory is not a file";
  // More than the limit: refused rather than cut, so a caller never parses half a file.
  write(dir.path() + "/big", std::string(10000, 'x'));
  EXPECT_EQ(read_small_file(dir.path() + "/big", 9999), std::nullopt);
  EXPECT_EQ(read_small_file(dir.path() + "/big", 10000)->size(), 10000u);
}

TEST(Files, IdentityFollowsTheFileNotItsContent) {
  test::TempDir dir("pgwarden-files");
  const std::string f = dir.path() + "/postmaster.pid";
  write(f, "123\n");
  FileId read_id;
  ASSERT_TRUE(read_small_file(f, 1 << 20, &read_id));
  EXPECT_EQ(file_id(f), read_id) << "the file read is the file the path names";
  write(f, "456\n");  // rewritten in place (truncated, same inode)
  EXPECT_EQ(file_id(f), read_id);
  // Replaced: a new file renamed over it is another one, though the content is the same.
  write(f + ".new", "456\n");
  ASSERT_EQ(rename((f + ".new").c_str(), f.c_str()), 0);
  EXPECT_NE(file_id(f), read_id);
  ASSERT_EQ(unlink(f.c_str()), 0);
  EXPECT_EQ(file_id(f), std::nullopt);
  FileId untouched{1, 2};
  EXPECT_EQ(read_small_file(f, 1 << 20, &untouched), std::nullopt);
  EXPECT_EQ(untouched, (FileId{1, 2})) << "no identity for a file that is not there";
}

TEST(Files, SymlinksAndRealPath) {
  test::TempDir dir("pgwarden-files");
  ASSERT_EQ(mkdir((dir.path() + "/data").c_str(), 0700), 0);
  ASSERT_EQ(symlink((dir.path() + "/data").c_str(), (dir.path() + "/link").c_str()), 0);
  EXPECT_EQ(read_symlink(dir.path() + "/link"), dir.path() + "/data");
  EXPECT_EQ(read_symlink(dir.path() + "/data"), std::nullopt) << "not a link";
  auto resolved = real_path(dir.path() + "/link/");
  ASSERT_TRUE(resolved.has_value());
  EXPECT_EQ(*resolved, *real_path(dir.path() + "/data"));
  EXPECT_EQ(resolved->back(), 'a') << "no trailing slash";
  EXPECT_EQ(real_path(dir.path() + "/missing"), std::nullopt);
  // /proc/self/cwd, as postmaster_pid() reads a postmaster's working directory.
  EXPECT_EQ(read_symlink("/proc/self/cwd"), real_path("."));
}

TEST(Files, KindsAndEmptyDirectories) {
  test::TempDir dir("pgwarden-files");
  std::string d = dir.path() + "/d", f = dir.path() + "/f";
  ASSERT_EQ(mkdir(d.c_str(), 0700), 0);
  write(f, "x");
  EXPECT_TRUE(path_exists(d));
  EXPECT_TRUE(path_exists(f));
  EXPECT_FALSE(path_exists(dir.path() + "/missing"));
  EXPECT_TRUE(is_directory(d));
  EXPECT_FALSE(is_directory(f));
  EXPECT_TRUE(is_regular_file(f));
  EXPECT_FALSE(is_regular_file(d));
  EXPECT_TRUE(directory_is_empty(d));
  write(d + "/.hidden", "");
  EXPECT_FALSE(directory_is_empty(d)) << "a dot file counts";
  EXPECT_FALSE(directory_is_empty(dir.path() + "/missing"));
  EXPECT_FALSE(directory_is_empty(f));
}

}  // namespace
}  // namespace pgwarden::util
