// The WAL a rewound former primary needs from its redo point: backup_label parsing, WAL file
// names, and the stash that puts back the segments pg_rewind removed (files only, no server).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "pgwarden/postgres/rewind_wal.hpp"
#include "support/harness.hpp"

namespace pgwarden::postgres {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t k16MB = 16 * 1024 * 1024;

// As pg_rewind 15 writes it.
const char* kLabel =
    "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n"
    "CHECKPOINT LOCATION: 0/4000060\n"
    "BACKUP METHOD: pg_rewind\n"
    "BACKUP FROM: standby\n"
    "START TIME: 2026-12-07 01:13:12 UTC\n";

TEST(RewindWal, WalFileNames) {
  EXPECT_EQ(wal_file_name(1, 3, k16MB), "000000010000000000000003");
  EXPECT_EQ(wal_file_name(2, 256 + 0x1F, k16MB), "00000002000000010000001F");
  // 1 GB segments: four per 4 GB "log id".
  EXPECT_EQ(wal_file_name(1, 9, 1024ULL * 1024 * 1024), "000000010000000200000001");
}

TEST(RewindWal, ParsesTheRewindLabel) {
  auto l = parse_backup_label(kLabel, k16MB);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->timeline, 1u);
  EXPECT_EQ(l->start_segment, 3u);
  EXPECT_EQ(l->checkpoint_lsn, 0x4000060);
  auto l3 = parse_backup_label("START WAL LOCATION: 1/A0000028 (file 0000000300000001000000A0)\nCHECKPOINT LOCATION: 1/A1000060\n", k16MB);
  ASSERT_TRUE(l3);
  EXPECT_EQ(l3->timeline, 3u);
  EXPECT_EQ(l3->start_segment, 256u + 0xA0);
}

TEST(RewindWal, RefusesLabelsItDoesNotUnderstand) {
  const char* bad[] = {
      "",
      "CHECKPOINT LOCATION: 0/4000060\n",                                                      // no start
      "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n",                       // no checkpoint
      "START WAL LOCATION: 0/3000028 (file 00000001000000000000003)\nCHECKPOINT LOCATION: 0/4000060\n",  // short name
      "START WAL LOCATION: 0/3000028 (file 00000001000000000000000g)\nCHECKPOINT LOCATION: 0/4000060\n",
      "START WAL LOCATION: 0/3000028 (file 000000010000000000000004)\nCHECKPOINT LOCATION: 0/4000060\n",  // disagree
      "START WAL LOCATION: x/3000028 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/4000060\n",
      "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/4000060\n",  // backwards
  };
  for (const char* text : bad) EXPECT_FALSE(parse_backup_label(text, k16MB)) << text;
  EXPECT_FALSE(parse_backup_label(kLabel, 0));
  EXPECT_FALSE(parse_backup_label(kLabel, 3 * 1024 * 1024));  // not a power-of-two divisor of 4 GB
}

class RewindWalStashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data = dir.file("data");
    fs::create_directories(data + "/pg_wal/archive_status");
    for (const char* seg : {"000000010000000000000003", "000000010000000000000004", "000000010000000000000005"})
      test::write_file(data + "/pg_wal/" + seg, std::string("wal of ") + seg);
    test::write_file(data + "/pg_wal/00000002.history", "1\t0/5018BA8\tno recovery target specified\n");
  }
  // What pg_rewind does in the failure: removes the segments the source lacks, writes the label.
  void rewind_removes(std::initializer_list<const char*> names) {
    for (const char* n : names) fs::remove(data + "/pg_wal/" + n);
    test::write_file(data + "/backup_label", kLabel);
  }
  test::TempDir dir{"pgw-rewind-wal"};
  std::string data;
};

TEST_F(RewindWalStashTest, PutsBackOnlyTheMissingSegmentsFromTheRedoPointToTheCheckpoint) {
  std::string stash_path;
  {
    RewindWalStash stash(data);
    stash_path = stash.path();
    EXPECT_EQ(stash.saved(), 3u) << "segments only, not the history file";
    EXPECT_EQ(fs::path(stash_path).parent_path(), fs::canonical(dir.path())) << "beside the data directory";
    rewind_removes({"000000010000000000000003", "000000010000000000000005"});
    auto back = stash.put_back(k16MB);
    // 3 holds the redo point; 5 lies past the checkpoint's segment (4): pg_rewind's business.
    EXPECT_EQ(back, std::vector<std::string>{"000000010000000000000003"});
    EXPECT_EQ(test::read_file(data + "/pg_wal/000000010000000000000003"), "wal of 000000010000000000000003");
    EXPECT_FALSE(fs::exists(data + "/pg_wal/000000010000000000000005"));
    EXPECT_TRUE(stash.put_back(k16MB).empty()) << "nothing twice";
  }
  EXPECT_FALSE(fs::exists(stash_path)) << "the stash is removed";
  EXPECT_TRUE(fs::exists(data + "/pg_wal/000000010000000000000003")) << "what was put back stays";
}

TEST_F(RewindWalStashTest, NothingMissingNothingPutBack) {
  RewindWalStash stash(data);
  rewind_removes({});
  EXPECT_TRUE(stash.put_back(k16MB).empty());
}

TEST_F(RewindWalStashTest, WithoutAReadableLabelChangesNothing) {
  RewindWalStash stash(data);
  fs::remove(data + "/pg_wal/000000010000000000000003");
  EXPECT_TRUE(stash.put_back(k16MB).empty()) << "no backup_label";
  test::write_file(data + "/backup_label", "START WAL LOCATION: garbage\n");
  EXPECT_TRUE(stash.put_back(k16MB).empty());
  EXPECT_FALSE(fs::exists(data + "/pg_wal/000000010000000000000003"));
}

TEST_F(RewindWalStashTest, WalDirectoryLinkedElsewhereKeepsTheStashBesideIt) {
  const std::string wal = dir.file("wal/pg_wal");
  fs::create_directories(dir.file("wal"));
  fs::rename(data + "/pg_wal", wal);
  fs::create_directory_symlink(wal, data + "/pg_wal");
  RewindWalStash stash(data);
  EXPECT_EQ(stash.saved(), 3u);
  EXPECT_EQ(fs::path(stash.path()).parent_path(), fs::canonical(dir.file("wal")));
  rewind_removes({"000000010000000000000003"});
  EXPECT_EQ(stash.put_back(k16MB), std::vector<std::string>{"000000010000000000000003"});
  EXPECT_TRUE(fs::exists(wal + "/000000010000000000000003"));
}

}  // namespace
}  // namespace pgwarden::postgres
