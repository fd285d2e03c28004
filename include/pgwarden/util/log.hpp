#pragma once
// Logging: spdlog with one line per event, level names as Patroni's (DEBUG, INFO, WARNING,
// ERROR, CRITICAL) so the chart's `log.level: WARNING` works unchanged.
#include <spdlog/spdlog.h>

#include <string>

namespace pgwarden::log {

// Sets the global level from a Patroni/Python level name; returns false if unknown.
bool set_level(const std::string& python_level_name);

// Configures the default logger (stderr, "timestamp LEVEL: message").
void init();

}  // namespace pgwarden::log
