#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "pgwarden/dcs/kubernetes/kube_config.hpp"
#include "support/harness.hpp"

namespace pgwarden::dcs::k8s {
namespace {

using pgwarden::test::TempDir;
using pgwarden::test::write_file;

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Sets (or unsets, with nullopt) an environment variable for the scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

const char* kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://k8s.example.com:6443
    certificate-authority: certs/ca.crt
- name: test-cluster
  cluster:
    server: http://127.0.0.1:8080
- name: v6
  cluster:
    server: https://[fd00::1]
    insecure-skip-tls-verify: true
users:
- name: dev-user
  user:
    tokenFile: tok/token
    client-certificate: /abs/client.crt
    client-key: client.key
- name: plain
  user:
    token: " s3cret "
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: db
- name: test
  context:
    cluster: test-cluster
    user: plain
- name: six
  context:
    cluster: v6
)";

TEST(K8sKubeConfig, CurrentContextWithRelativePaths) {
  TempDir dir("k8s-kubeconfig");
  write_file(dir.file("config"), kTwoContexts);
  auto r = kubeconfig_config(dir.file("config"), "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->scheme, "https");
  EXPECT_EQ(r->host, "k8s.example.com");
  EXPECT_EQ(r->port, 6443);
  EXPECT_EQ(r->authority(), "k8s.example.com:6443");
  EXPECT_EQ(r->ca_file, dir.path() + "/certs/ca.crt");
  EXPECT_TRUE(r->ca_pem.empty());
  EXPECT_FALSE(r->insecure_skip_tls_verify);
  EXPECT_EQ(r->token_file, dir.path() + "/tok/token");
  EXPECT_EQ(r->client_cert_file, "/abs/client.crt");
  EXPECT_EQ(r->client_key_file, dir.path() + "/client.key");
  EXPECT_EQ(r->namespace_, "db");
}

TEST(K8sKubeConfig, NamedContextPlainHttpAndToken) {
  TempDir dir("k8s-kubeconfig");
  write_file(dir.file("config"), kTwoContexts);
  auto r = kubeconfig_config(dir.file("config"), "test");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->scheme, "http");
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 8080);
  EXPECT_EQ(r->token, "s3cret");
  EXPECT_TRUE(r->token_file.empty());
  EXPECT_TRUE(r->ca_file.empty());
  EXPECT_TRUE(r->namespace_.empty());
}

TEST(K8sKubeConfig, Ipv6ServerDefaultPortAndInsecure) {
  TempDir dir("k8s-kubeconfig");
  write_file(dir.file("config"), kTwoContexts);
  auto r = kubeconfig_config(dir.file("config"), "six");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->host, "fd00::1");
  EXPECT_EQ(r->port, 443);
  EXPECT_EQ(r->authority(), "[fd00::1]:443");
  EXPECT_TRUE(r->insecure_skip_tls_verify);
  EXPECT_TRUE(r->token.empty());
  EXPECT_TRUE(r->token_file.empty());
}

TEST(K8sKubeConfig, DefaultPorts) {
  TempDir dir("k8s-kubeconfig");
  for (auto [url, port] : {std::pair<std::string, int>{"http://api.local", 80}, {"https://api.local/", 443},
                           {"HTTPS://api.local:1", 1}}) {
    write_file(dir.file("config"), "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: " + url +
                                       "\ncontexts:\n- name: c\n  context:\n    cluster: k\n");
    auto r = kubeconfig_config(dir.file("config"), "");
    ASSERT_TRUE(r.ok()) << url << ": " << r.status().message();
    EXPECT_EQ(r->port, port) << url;
    EXPECT_EQ(r->host, "api.local");
  }
}

TEST(K8sKubeConfig, InlineBase64Data) {
  TempDir dir("k8s-kubeconfig");
  const std::string ca = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
  const std::string cert = "client cert PEM\n", key = "client key PEM!\n";
  std::string ca64 = b64(ca);
  // Folded over two lines (whitespace is ignored).
  std::string folded = ca64.substr(0, 10) + "\n      " + ca64.substr(10);
  write_file(dir.file("kc.yaml"), "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://10.0.0.1:443\n"
                                  "    certificate-authority-data: |\n      " + folded +
                                      "\n    certificate-authority: ignored.crt\n"
                                      "users:\n- name: u\n  user:\n    client-certificate-data: " + b64(cert) +
                                      "\n    client-key-data: " + b64(key) +
                                      "\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n");
  auto r = kubeconfig_config(dir.file("kc.yaml"), "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->ca_pem, ca);
  EXPECT_TRUE(r->ca_file.empty());  // data wins
  EXPECT_EQ(r->client_cert_pem, cert);
  EXPECT_EQ(r->client_key_pem, key);
  EXPECT_TRUE(r->client_cert_file.empty());
  EXPECT_EQ(r->host, "10.0.0.1");
}

void expect_invalid(const std::string& path, const std::string& context, const std::string& fragment) {
  auto r = kubeconfig_config(path, context);
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(K8sKubeConfig, Errors) {
  TempDir dir("k8s-kubeconfig");
  const std::string p = dir.file("config");
  expect_invalid(p, "", "cannot read");
  write_file(p, kTwoContexts);
  expect_invalid(p, "nope", "context \"nope\" not found");

  const std::string base = "clusters:\n- name: k\n  cluster:\n    server: https://h:1\n";
  write_file(p, base + "contexts:\n- name: c\n  context:\n    cluster: k\n");
  expect_invalid(p, "", "no context given and no current-context");

  write_file(p, base + "contexts:\n- name: c\n  context:\n    cluster: other\n");
  expect_invalid(p, "c", "cluster \"other\"");

  write_file(p, base + "contexts:\n- name: c\n  context:\n    cluster: k\n    user: ghost\n");
  expect_invalid(p, "c", "user \"ghost\"");

  write_file(p, base + "users:\n- name: u\n  user:\n    exec:\n      command: aws\n"
                       "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n");
  expect_invalid(p, "c", "exec credential plugin, which pgwarden does not support");

  write_file(p, base + "users:\n- name: u\n  user:\n    auth-provider:\n      name: gcp\n"
                       "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n");
  expect_invalid(p, "c", "auth-provider, which pgwarden does not support");

  write_file(p, base + "users:\n- name: u\n  user:\n    client-certificate: a.crt\n"
                       "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n");
  expect_invalid(p, "c", "needs both the certificate and its key");

  for (std::string url : {"ftp://h", "h:443", "https://h:99999", "https://", "https://[::1", "https://h/prefix"}) {
    write_file(p, "clusters:\n- name: k\n  cluster:\n    server: \"" + url +
                      "\"\ncontexts:\n- name: c\n  context:\n    cluster: k\n");
    expect_invalid(p, "c", "server URL \"" + url + "\"");
  }

  write_file(p, "clusters:\n- name: k\n  cluster:\n    server: https://h\n    certificate-authority-data: \"!!notb64\"\n"
                "contexts:\n- name: c\n  context:\n    cluster: k\n");
  expect_invalid(p, "c", "certificate-authority-data is not valid base64");

  write_file(p, "clusters: [unterminated\n");
  expect_invalid(p, "c", "not valid YAML");
}

TEST(K8sKubeConfig, AuthorityBracketsIpv6) {
  ApiServer s;
  s.host = "::1";
  s.port = 6443;
  EXPECT_EQ(s.authority(), "[::1]:6443");
  s.host = "10.96.0.1";
  s.port = 443;
  EXPECT_EQ(s.authority(), "10.96.0.1:443");
  s.host = "kubernetes.default.svc";
  EXPECT_EQ(s.authority(), "kubernetes.default.svc:443");
}

class K8sInCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(sa.file("token"), "tok-123\n");
    write_file(sa.file("ca.crt"), "-----BEGIN CERTIFICATE-----\n");
    write_file(sa.file("namespace"), "prod\n");
  }
  TempDir sa{"k8s-sa"};
};

TEST_F(K8sInCluster, ReadsEnvAndServiceAccountFiles) {
  ScopedEnv h("KUBERNETES_SERVICE_HOST", "10.96.0.1"), p("KUBERNETES_SERVICE_PORT", "443");
  auto r = in_cluster_config(sa.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->scheme, "https");
  EXPECT_EQ(r->host, "10.96.0.1");
  EXPECT_EQ(r->port, 443);
  EXPECT_EQ(r->token, "tok-123");
  EXPECT_EQ(r->token_file, sa.file("token"));
  EXPECT_EQ(r->ca_file, sa.file("ca.crt"));
  EXPECT_EQ(r->namespace_, "prod");
  EXPECT_FALSE(r->insecure_skip_tls_verify);
}

TEST_F(K8sInCluster, Ipv6HostKeptWithoutBrackets) {
  ScopedEnv h("KUBERNETES_SERVICE_HOST", "fd00:10:96::1"), p("KUBERNETES_SERVICE_PORT", "6443");
  auto r = in_cluster_config(sa.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->host, "fd00:10:96::1");
  EXPECT_EQ(r->authority(), "[fd00:10:96::1]:6443");
}

TEST_F(K8sInCluster, MissingOrEmptyEnvIsInvalid) {
  {
    ScopedEnv h("KUBERNETES_SERVICE_HOST", std::nullopt), p("KUBERNETES_SERVICE_PORT", "443");
    auto r = in_cluster_config(sa.path());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalid);
    EXPECT_NE(r.status().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  }
  {
    ScopedEnv h("KUBERNETES_SERVICE_HOST", "10.0.0.1"), p("KUBERNETES_SERVICE_PORT", "");
    EXPECT_FALSE(in_cluster_config(sa.path()).ok());
  }
  {
    ScopedEnv h("KUBERNETES_SERVICE_HOST", "10.0.0.1"), p("KUBERNETES_SERVICE_PORT", "https");
    auto r = in_cluster_config(sa.path());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("KUBERNETES_SERVICE_PORT"), std::string::npos);
  }
}

TEST_F(K8sInCluster, MissingTokenOrCaIsInvalid) {
  ScopedEnv h("KUBERNETES_SERVICE_HOST", "10.0.0.1"), p("KUBERNETES_SERVICE_PORT", "443");
  TempDir empty("k8s-sa-empty");
  auto r = in_cluster_config(empty.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(empty.file("token")), std::string::npos) << r.status().message();
  write_file(empty.file("token"), "t");
  r = in_cluster_config(empty.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(empty.file("ca.crt")), std::string::npos) << r.status().message();
  write_file(empty.file("ca.crt"), "x");
  r = in_cluster_config(empty.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->namespace_.empty());  // no namespace file: unknown
}

TEST(K8sDiscover, KubeconfigFromEnvAndCacertOverride) {
  TempDir dir("k8s-discover");
  write_file(dir.file("config"), kTwoContexts);
  ScopedEnv h("KUBERNETES_SERVICE_HOST", std::nullopt);
  ScopedEnv kc("KUBECONFIG", dir.file("config") + ":/nonexistent/second");
  auto r = discover_api_server("test", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->port, 8080);
  r = discover_api_server("", "/etc/custom-ca.pem");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->host, "k8s.example.com");
  EXPECT_EQ(r->ca_file, "/etc/custom-ca.pem");
}

TEST(K8sDiscover, HomeKubeconfigWhenKubeconfigUnset) {
  TempDir home("k8s-home");
  write_file(home.file(".kube-placeholder"), "");
  std::string kube = home.path() + "/.kube";
  ASSERT_EQ(::mkdir(kube.c_str(), 0755), 0);
  write_file(kube + "/config", kTwoContexts);
  ScopedEnv h("KUBERNETES_SERVICE_HOST", std::nullopt), kc("KUBECONFIG", std::nullopt), hm("HOME", home.path());
  auto r = discover_api_server("six", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->host, "fd00::1");
}

TEST(K8sDiscover, InClusterWinsWhenServiceHostSet) {
  ScopedEnv h("KUBERNETES_SERVICE_HOST", "10.1.2.3"), p("KUBERNETES_SERVICE_PORT", "443");
  // The default service account directory does not exist outside a pod: a clear error, no kubeconfig fallback.
  auto r = discover_api_server("", "");
  if (pgwarden::test::file_exists(std::string(kServiceAccountDir) + "/token")) GTEST_SKIP() << "running in a pod";
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("in-cluster"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace pgwarden::dcs::k8s
