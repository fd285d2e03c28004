#pragma once
// ISO 8601 timestamps as Patroni writes and reads them (Python's isoformat / dateutil):
// 2024-01-18T15:43:45.123456+00:00, with 'Z', other offsets, a space instead of 'T', or no
// fraction. Hand-written: nothing in the project's dependencies parses ISO 8601 with offsets.
#include <optional>
#include <string>

namespace pgwarden::util {

// Seconds since the epoch; nullopt when the text is not such a timestamp. A timestamp
// without an offset is taken as UTC.
std::optional<double> parse_iso8601(const std::string& text);

// UTC with microseconds and +00:00, as Python's datetime.isoformat().
std::string format_iso8601(double epoch_seconds);

}  // namespace pgwarden::util
