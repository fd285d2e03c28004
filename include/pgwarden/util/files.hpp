#pragma once
// Small file-system queries on plain POSIX calls, for what the HA loop does every cycle
// (postmaster.pid, postmaster.opts, /proc/<pid>, the data directory). iostreams and
// std::filesystem would do as well, but their code lies all over libstdc++ and an idle member
// would keep those pages resident only for this (see bench/README.md, "Idle memory").
#include <cstddef>
#include <optional>
#include <string>

namespace pgwarden::util {

// Which file a path named: the same (device, inode) means the very same file, even after
// it was rewritten in place; a file removed and created again is another one.
struct FileId {
  unsigned long long device = 0, inode = 0;
  bool operator==(const FileId&) const = default;
};

// The whole file, or nullopt when it cannot be opened or read, or is longer than `limit`.
// `id` (optional) receives the identity of the file read (the same descriptor's fstat).
std::optional<std::string> read_small_file(const std::string& path, size_t limit = 1 << 20, FileId* id = nullptr);

// The identity of the file `path` names now (stat(2), following links), nullopt if none.
std::optional<FileId> file_id(const std::string& path);

// The target of a symbolic link (readlink(2)), or nullopt.
std::optional<std::string> read_symlink(const std::string& path);

// realpath(3): absolute, symbolic links resolved; nullopt when the path does not exist.
std::optional<std::string> real_path(const std::string& path);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

// True when `path` is a directory with no entry besides "." and "..". A directory that cannot
// be read is not empty: callers use this to decide whether to create a cluster there.
bool directory_is_empty(const std::string& path);

}  // namespace pgwarden::util
