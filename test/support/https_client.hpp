#pragma once
// A small HTTPS client for tests (OpenSSL through Asio/Beast): verifies the server with a
// given CA file and the host name, optionally presents a client certificate, and can send
// several requests on one connection (keep-alive).
#include <chrono>
#include <memory>
#include <string>

#include "support/harness.hpp"

namespace pgwarden::test {

struct TlsClientOptions {
  std::string ca_file;                 // empty: no verification of the server
  std::string cert_file, key_file;     // client certificate, if any
};

class HttpsConnection {
 public:
  HttpsConnection(const std::string& host, int port, TlsClientOptions opts,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~HttpsConnection();
  HttpsConnection(const HttpsConnection&) = delete;
  HttpsConnection& operator=(const HttpsConnection&) = delete;

  // Connects and runs the TLS handshake; false (see error()) on failure.
  bool connect();
  // One request on the open connection (HTTP/1.1, keep-alive); status 0 on failure.
  HttpReply request(const std::string& method, const std::string& target, const std::string& body = "");
  const std::string& error() const { return error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

// One request on a fresh connection; status 0 (and the reason in `error`, when given) if the
// connection, handshake or exchange fails.
HttpReply https_request(const std::string& method, const std::string& host, int port, const std::string& target,
                        const TlsClientOptions& opts, std::string* error = nullptr,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace pgwarden::test
