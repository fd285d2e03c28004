#pragma once
// Keeps the WAL a rewound former primary needs from its redo point.
//
// pg_rewind (PostgreSQL 15) removes the target's WAL files that the source lacks, except the
// ones it read while scanning the target's WAL from the last common checkpoint *record* on.
// The segments between that checkpoint's redo point and its record are never read: when the
// checkpoint spans a segment switch (one taken for a base backup can) and the promoted source
// has already recycled those segments, they are gone on both sides, and the rewound standby
// asks the new primary for them forever ("requested WAL segment ... has already been
// removed"). So before pg_rewind the target's segments are hard-linked aside, and afterwards
// the ones from backup_label's start segment up to its checkpoint's segment that pg_rewind
// removed are linked back. These segments hold WAL from before the timelines diverged, the
// same on both servers.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::postgres {

struct RewindLabel {
  uint32_t timeline = 0;       // of the start segment
  uint64_t start_segment = 0;  // segment number of START WAL LOCATION (the redo point)
  int64_t checkpoint_lsn = 0;  // CHECKPOINT LOCATION
};

// START WAL LOCATION and CHECKPOINT LOCATION of a backup_label (as pg_rewind writes it);
// nullopt when either is missing or malformed.
std::optional<RewindLabel> parse_backup_label(const std::string& text, uint64_t wal_segment_size);

// "000000010000000000000003" for timeline 1, segment 3.
std::string wal_file_name(uint32_t timeline, uint64_t segment, uint64_t wal_segment_size);

class RewindWalStash {
 public:
  // Hard-links the WAL segment files of data_dir's pg_wal into a directory beside the data
  // directory (or beside pg_wal when that is a link elsewhere), never inside it: pg_rewind
  // removes what the source does not have there. Best effort: when the links cannot be made
  // (another file system, no permission) the stash stays empty and put_back does nothing.
  explicit RewindWalStash(const std::string& data_dir);
  ~RewindWalStash();  // removes the stash
  RewindWalStash(const RewindWalStash&) = delete;
  RewindWalStash& operator=(const RewindWalStash&) = delete;

  // After pg_rewind: links back the segments from backup_label's start segment to its
  // checkpoint's segment that pg_wal lacks and the stash has. Returns their names.
  std::vector<std::string> put_back(uint64_t wal_segment_size) const;

  size_t saved() const { return saved_; }
  const std::string& path() const { return stash_; }

 private:
  std::string data_dir_;
  std::string wal_dir_;
  std::string stash_;
  size_t saved_ = 0;
};

}  // namespace pgwarden::postgres
