#pragma once
// Errors are values: every expected failure (DCS unreachable, lost race, PostgreSQL not
// started, bad input) comes back as a Status or Result, never as an exception.
#include <optional>
#include <string>
#include <utility>

namespace pgwarden {

enum class Code {
  kOk = 0,
  kInvalid,      // the input is malformed or breaks a rule; nothing was changed
  kConflict,     // someone else wrote first (compare-and-set lost, key exists)
  kNotFound,     // the thing asked for does not exist
  kUnavailable,  // the peer (DCS, PostgreSQL, process) could not be reached in time
  kFailed,       // the operation ran and failed (non-zero exit, SQL error, ...)
};

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(Code code, std::string message) { return Status(code, std::move(message)); }
  static Status Invalid(std::string m) { return Status(Code::kInvalid, std::move(m)); }
  static Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status Failed(std::string m) { return Status(Code::kFailed, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  explicit operator bool() const { return ok(); }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_ = Status::Failed("no value");
};

}  // namespace pgwarden
