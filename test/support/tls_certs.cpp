#include "support/tls_certs.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <stdexcept>

#include "support/harness.hpp"

namespace pgwarden::test {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("tls_certs: " + what); }

struct KeyDel {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertDel {
  void operator()(X509* c) const { X509_free(c); }
};
struct BioDel {
  void operator()(BIO* b) const { BIO_free(b); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDel>;
using CertPtr = std::unique_ptr<X509, CertDel>;
using BioPtr = std::unique_ptr<BIO, BioDel>;

KeyPtr new_key() {
  KeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) fail("cannot generate an EC key");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) fail("bad extension " + std::string(OBJ_nid2sn(nid)) + " = " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed later; issuer name set from `issuer` (or itself).
CertPtr new_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, int days) {
  CertPtr c(X509_new());
  if (!c) fail("X509_new");
  X509_set_version(c.get(), 2);
  std::uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(c.get()), static_cast<int64_t>(serial >> 1));
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("pgwarden tests"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  return c;
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_to_pem(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), c) != 1) fail("PEM_write_bio_X509");
  return bio_string(b.get());
}

std::string key_to_pem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("PEM_write_bio_PrivateKey");
  return bio_string(b.get());
}

}  // namespace

struct TestCa::Impl {
  KeyPtr key;
  CertPtr cert;
};

TestCa::TestCa(const std::string& common_name) : impl_(std::make_unique<Impl>()) {
  impl_->key = new_key();
  impl_->cert = new_cert(impl_->key.get(), common_name, nullptr, 30);
  X509* c = impl_->cert.get();
  add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(c, c, NID_subject_key_identifier, "hash");
  if (X509_sign(c, impl_->key.get(), EVP_sha256()) <= 0) fail("cannot sign the CA certificate");
}

TestCa::~TestCa() = default;

std::string TestCa::cert_pem() const { return cert_to_pem(impl_->cert.get()); }

void TestCa::write_cert(const std::string& path) const { write_file(path, cert_pem(), 0644); }

void TestCa::issue(const CertSpec& spec, const std::string& cert_path, const std::string& key_path) const {
  KeyPtr key = new_key();
  CertPtr cert = new_cert(key.get(), spec.common_name, impl_->cert.get(), spec.valid_days);
  X509* c = cert.get();
  X509* ca = impl_->cert.get();
  add_ext(c, ca, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(c, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  std::string eku;
  if (spec.server) eku = "serverAuth";
  if (spec.client) eku += std::string(eku.empty() ? "" : ",") + "clientAuth";
  if (!eku.empty()) add_ext(c, ca, NID_ext_key_usage, eku);
  add_ext(c, ca, NID_subject_key_identifier, "hash");
  add_ext(c, ca, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : spec.dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : spec.ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  if (!san.empty()) add_ext(c, ca, NID_subject_alt_name, san);
  if (X509_sign(c, impl_->key.get(), EVP_sha256()) <= 0) fail("cannot sign the certificate");
  write_file(cert_path, cert_to_pem(c), 0644);
  write_file(key_path, key_to_pem(key.get()), 0600);
}

TlsFiles make_test_tls(const std::string& dir, bool with_client) {
  TlsFiles f;
  TestCa ca;
  f.ca_file = dir + "/ca.crt";
  f.cert_file = dir + "/server.crt";
  f.key_file = dir + "/server.key";
  ca.write_cert(f.ca_file);
  CertSpec server;
  server.common_name = "localhost";
  server.dns_names = {"localhost"};
  server.ip_addresses = {"127.0.0.1", "::1"};
  ca.issue(server, f.cert_file, f.key_file);
  if (with_client) {
    f.client_cert_file = dir + "/client.crt";
    f.client_key_file = dir + "/client.key";
    CertSpec client;
    client.common_name = "pgwarden-client";
    client.server = false;
    client.client = true;
    ca.issue(client, f.client_cert_file, f.client_key_file);
  }
  return f;
}

}  // namespace pgwarden::test
