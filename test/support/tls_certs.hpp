#pragma once
// Throw-away X.509 material for TLS tests, made with OpenSSL's C API (no openssl binary):
// a self-signed CA and leaf certificates it signs (server and/or client use, with the given
// subject alternative names), written as PEM files. Keys are ECDSA P-256.
#include <memory>
#include <string>
#include <vector>

namespace pgwarden::test {

struct CertSpec {
  std::string common_name = "localhost";
  std::vector<std::string> dns_names;  // SAN DNS entries
  std::vector<std::string> ip_addresses;  // SAN IP entries (IPv4 or IPv6 literals)
  bool server = true;  // extendedKeyUsage serverAuth
  bool client = false;  // extendedKeyUsage clientAuth
  int valid_days = 2;
};

class TestCa {
 public:
  explicit TestCa(const std::string& common_name = "pgwarden test CA");
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  std::string cert_pem() const;
  // Writes the CA certificate as PEM (mode 0644).
  void write_cert(const std::string& path) const;
  // Issues a certificate signed by this CA; writes it (0644) and its private key (0600) as PEM.
  void issue(const CertSpec& spec, const std::string& cert_path, const std::string& key_path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The usual set in `dir`: ca.crt, server.crt/server.key (SAN IP:127.0.0.1, IP:::1, DNS:localhost)
// and, with `with_client`, client.crt/client.key (clientAuth, CN "pgwarden-client").
struct TlsFiles {
  std::string ca_file, cert_file, key_file, client_cert_file, client_key_file;
};
TlsFiles make_test_tls(const std::string& dir, bool with_client = false);

}  // namespace pgwarden::test
