#pragma once
// Helpers shared by the backup API's unit tests.
#include <string>

#include "pgwarden/api/router.hpp"

namespace pgwarden::backup::test_support {

// An HttpRequest as the server would hand it to a handler.
inline api::HttpRequest request(const std::string& method, const std::string& target, const std::string& body = "") {
  api::HttpRequest r;
  r.method = method;
  r.target = target;
  api::split_target(target, &r.path, &r.query);
  r.body = body;
  return r;
}

}  // namespace pgwarden::backup::test_support
