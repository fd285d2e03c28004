#include "pgwarden/util/iso_time.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace pgwarden::util {

std::optional<double> parse_iso8601(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  int year, month, day, hour, minute, second;
  char sep;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d%n", &year, &month, &day, &sep, &hour, &minute, &second,
                  &consumed) != 7 ||
      (sep != 'T' && sep != ' '))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  double t = static_cast<double>(timegm(&tm));
  size_t i = static_cast<size_t>(consumed);
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    double scale = 0.1, frac = 0;
    ++i;
    size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      frac += (text[i] - '0') * scale;
      scale /= 10;
      ++i;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    t += frac;
  }
  if (i == text.size()) return t;
  if (text[i] == 'Z' || text[i] == 'z') return i + 1 == text.size() ? std::optional<double>(t) : std::nullopt;
  if (text[i] != '+' && text[i] != '-') return std::nullopt;
  int sign = text[i] == '-' ? -1 : 1;
  int oh = 0, om = 0, n = 0;
  std::string rest = text.substr(i + 1);
  if (std::sscanf(rest.c_str(), "%2d:%2d%n", &oh, &om, &n) == 2 && static_cast<size_t>(n) == rest.size()) {
  } else if (std::sscanf(rest.c_str(), "%2d%2d%n", &oh, &om, &n) == 2 && static_cast<size_t>(n) == rest.size()) {
  } else if (std::sscanf(rest.c_str(), "%2d%n", &oh, &n) == 1 && static_cast<size_t>(n) == rest.size()) {
  } else {
    return std::nullopt;
  }
  if (oh > 23 || om > 59) return std::nullopt;
  return t - sign * (oh * 3600 + om * 60);
}

std::string format_iso8601(double epoch_seconds) {
  double whole = std::floor(epoch_seconds);
  long micros = std::lround((epoch_seconds - whole) * 1e6);
  std::time_t secs = static_cast<std::time_t>(whole);
  if (micros >= 1000000) {
    micros -= 1000000;
    ++secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  if (micros) std::snprintf(out, sizeof out, "%s.%06ld+00:00", buf, micros);
  else std::snprintf(out, sizeof out, "%s+00:00", buf);
  return out;
}

}  // namespace pgwarden::util
