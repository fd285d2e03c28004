#pragma once
// PostgreSQL's state for the REST API, read at most once per `max_age`: health probes and
// load balancers may ask thousands of times a second, and each reading is a round trip to
// PostgreSQL on one connection. Callers that arrive while a reading is under way wait for it
// and share it, so an answer is never older than `max_age` plus one reading.
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>

#include "pgwarden/postgres/postgres.hpp"

namespace pgwarden::api {

class FreshState {
 public:
  using Reader = std::function<std::optional<postgres::PgState>()>;
  using Clock = std::chrono::steady_clock;

  FreshState(Reader read, std::chrono::milliseconds max_age, std::function<Clock::time_point()> now = Clock::now)
      : read_(std::move(read)), max_age_(max_age), now_(std::move(now)) {}

  std::optional<postgres::PgState> get() {
    std::lock_guard<std::mutex> lock(mu_);
    auto t = now_();
    if (!taken_ || t - *taken_ > max_age_) {
      value_ = read_();
      taken_ = now_();
    }
    return value_;
  }

 private:
  Reader read_;
  std::chrono::milliseconds max_age_;
  std::function<Clock::time_point()> now_;
  std::mutex mu_;
  std::optional<Clock::time_point> taken_;
  std::optional<postgres::PgState> value_;
};

}  // namespace pgwarden::api
