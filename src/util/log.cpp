#include "pgwarden/util/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <cctype>

namespace pgwarden::log {

bool set_level(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
  spdlog::level::level_enum level;
  if (n == "DEBUG") level = spdlog::level::debug;
  else if (n == "INFO") level = spdlog::level::info;
  else if (n == "WARNING" || n == "WARN") level = spdlog::level::warn;
  else if (n == "ERROR") level = spdlog::level::err;
  else if (n == "CRITICAL" || n == "FATAL") level = spdlog::level::critical;
  else return false;
  spdlog::set_level(level);
  return true;
}

void init() {
  auto logger = spdlog::stderr_logger_mt("pgwarden");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S,%e %^%l%$: %v");
  spdlog::flush_on(spdlog::level::trace);
}

}  // namespace pgwarden::log
