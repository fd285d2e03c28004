#include "support/k8s_emulator.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <climits>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <ctime>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace pgwarden::test {

namespace http = boost::beast::http;
using nlohmann::json;

struct K8sEmulator::Request {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;
  std::string content_type;
  std::string authorization;
  std::string body;
};

// A blocking stream over an accepted socket, optionally through a TLS session; a Beast
// SyncReadStream / SyncWriteStream. stop() and drop_watches() interrupt it from other threads
// with shutdown(2) on the socket, which makes recv/SSL_read and send/SSL_write fail.
class K8sEmulator::Conn {
 public:
  Conn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Conn() {
    if (ssl_) {
      if (!cut_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
    ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      return raw_read(b.data(), b.size(), ec);
    }
    return 0;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b = *it;
      if (b.size() == 0) continue;
      return raw_write(b.data(), b.size(), ec);
    }
    return 0;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers) {
    boost::system::error_code ec;
    auto n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  bool write_all(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      boost::system::error_code ec;
      std::size_t n = raw_write(data.data() + off, data.size() - off, ec);
      if (ec || n == 0) return false;
      off += n;
    }
    return true;
  }

  int fd() const { return fd_; }

 private:
  std::size_t raw_read(void* p, std::size_t n, boost::system::error_code& ec) {
    if (ssl_) {
      int r = SSL_read(ssl_, p, static_cast<int>(std::min<std::size_t>(n, INT_MAX)));
      if (r > 0) return static_cast<std::size_t>(r);
      if (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN) {
        ec = boost::asio::error::eof;
      } else {
        cut_ = true;
        ec = boost::asio::error::connection_reset;
      }
      ERR_clear_error();
      return 0;
    }
    for (;;) {
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r > 0) return static_cast<std::size_t>(r);
      if (r == 0) {
        ec = boost::asio::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      ec = boost::system::error_code(errno, boost::system::system_category());
      return 0;
    }
  }
  std::size_t raw_write(const void* p, std::size_t n, boost::system::error_code& ec) {
    if (ssl_) {
      int r = SSL_write(ssl_, p, static_cast<int>(std::min<std::size_t>(n, INT_MAX)));
      if (r > 0) return static_cast<std::size_t>(r);
      cut_ = true;
      ERR_clear_error();
      ec = boost::asio::error::broken_pipe;
      return 0;
    }
    for (;;) {
      ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (r > 0) return static_cast<std::size_t>(r);
      if (r < 0 && errno == EINTR) continue;
      ec = r == 0 ? boost::asio::error::broken_pipe : boost::system::error_code(errno, boost::system::system_category());
      return 0;
    }
  }

  int fd_;
  SSL* ssl_;
  bool cut_ = false;  // the TLS session failed: no close_notify
};

namespace {

const std::set<std::string> kResources = {"endpoints", "configmaps", "pods", "services"};

std::string kind_of(const std::string& resource) {
  if (resource == "endpoints") return "Endpoints";
  if (resource == "configmaps") return "ConfigMap";
  if (resource == "pods") return "Pod";
  if (resource == "services") return "Service";
  return "Unknown";
}

std::string key_of(const std::string& resource, const std::string& ns, const std::string& name) {
  return resource + "/" + ns + "/" + name;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string make_uid() {
  static std::mutex m;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lk(m);
  const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out += '-';
    out += hex[rng() & 15];
  }
  return out;
}

json status_json(int code, const std::string& reason, const std::string& message) {
  return json{{"kind", "Status"},     {"apiVersion", "v1"}, {"metadata", json::object()},
              {"status", "Failure"},  {"message", message}, {"reason", reason},
              {"code", code}};
}

std::string reason_for(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "InternalError";
  }
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> split_terms(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!trim(cur).empty()) out.push_back(trim(cur));
  return out;
}

std::set<std::string> parse_set(const std::string& s) {
  std::set<std::string> out;
  auto b = s.find('('), e = s.rfind(')');
  if (b == std::string::npos || e == std::string::npos || e < b) throw std::invalid_argument("bad set: " + s);
  std::stringstream ss(s.substr(b + 1, e - b - 1));
  std::string item;
  while (std::getline(ss, item, ',')) out.insert(trim(item));
  return out;
}

// Label selector: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b); comma = AND.
bool label_match(const json& obj, const std::string& selector) {
  if (trim(selector).empty()) return true;
  json labels = json::object();
  if (obj.contains("metadata") && obj["metadata"].contains("labels") && obj["metadata"]["labels"].is_object())
    labels = obj["metadata"]["labels"];
  auto value = [&](const std::string& k) -> std::optional<std::string> {
    if (!labels.contains(k) || !labels[k].is_string()) return std::nullopt;
    return labels[k].get<std::string>();
  };
  for (const auto& term : split_terms(selector)) {
    std::size_t pos;
    if ((pos = term.find("!=")) != std::string::npos) {
      auto v = value(trim(term.substr(0, pos)));
      if (v && *v == trim(term.substr(pos + 2))) return false;
    } else if ((pos = term.find("==")) != std::string::npos) {
      auto v = value(trim(term.substr(0, pos)));
      if (!v || *v != trim(term.substr(pos + 2))) return false;
    } else if ((pos = term.find('=')) != std::string::npos) {
      auto v = value(trim(term.substr(0, pos)));
      if (!v || *v != trim(term.substr(pos + 1))) return false;
    } else if ((pos = term.find(" notin ")) != std::string::npos) {
      auto v = value(trim(term.substr(0, pos)));
      if (v && parse_set(term.substr(pos)).count(*v)) return false;
    } else if ((pos = term.find(" in ")) != std::string::npos) {
      auto v = value(trim(term.substr(0, pos)));
      if (!v || !parse_set(term.substr(pos)).count(*v)) return false;
    } else if (!term.empty() && term[0] == '!') {
      if (value(trim(term.substr(1)))) return false;
    } else {
      if (!value(term)) return false;
    }
  }
  return true;
}

// Field selector: metadata.name / metadata.namespace with =, ==, !=.
bool field_match(const json& obj, const std::string& selector) {
  if (trim(selector).empty()) return true;
  for (const auto& term : split_terms(selector)) {
    bool neg = false;
    std::size_t pos, len = 1;
    if ((pos = term.find("!=")) != std::string::npos) {
      neg = true;
      len = 2;
    } else if ((pos = term.find("==")) != std::string::npos) {
      len = 2;
    } else if ((pos = term.find('=')) == std::string::npos) {
      throw std::invalid_argument("bad field selector: " + term);
    }
    std::string field = trim(term.substr(0, pos)), want = trim(term.substr(pos + len));
    std::string have;
    if (field == "metadata.name") {
      have = obj["metadata"].value("name", "");
    } else if (field == "metadata.namespace") {
      have = obj["metadata"].value("namespace", "");
    } else {
      throw std::invalid_argument("field label not supported: " + field);
    }
    if ((have == want) == neg) return false;
  }
  return true;
}

bool is_loopback(const std::string& ip) {
  in_addr a4{};
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

// Returns an error message for an invalid object, empty when valid.
std::string validate(const std::string& resource, const json& obj) {
  static const std::regex label_re("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");
  if (!obj.is_object()) return "object must be a JSON object";
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "metadata: Required value";
  const json& md = obj["metadata"];
  if (!md.contains("name") || !md["name"].is_string() || md["name"].get<std::string>().empty())
    return "metadata.name: Required value: name or generateName is required";
  if (md.contains("annotations") && !md["annotations"].is_null()) {
    if (!md["annotations"].is_object()) return "metadata.annotations: Invalid value: must be an object";
    std::size_t total = 0;
    for (auto& [k, v] : md["annotations"].items()) {
      if (!v.is_string()) return "metadata.annotations." + k + ": Invalid value: must be a string";
      total += k.size() + v.get<std::string>().size();
    }
    if (total > 262144) return "metadata.annotations: Too long: must have at most 262144 bytes";
  }
  if (md.contains("labels") && !md["labels"].is_null()) {
    if (!md["labels"].is_object()) return "metadata.labels: Invalid value: must be an object";
    for (auto& [k, v] : md["labels"].items()) {
      if (!v.is_string()) return "metadata.labels." + k + ": Invalid value: must be a string";
      auto s = v.get<std::string>();
      if (s.size() > 63 || !std::regex_match(s, label_re))
        return "metadata.labels: Invalid value: \"" + s + "\": a valid label must be an empty string or consist of "
               "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    }
  }
  if (resource == "endpoints" && obj.contains("subsets") && !obj["subsets"].is_null()) {
    if (!obj["subsets"].is_array()) return "subsets: Invalid value: must be an array";
    for (const auto& ss : obj["subsets"]) {
      for (const char* list : {"addresses", "notReadyAddresses"}) {
        if (!ss.contains(list) || !ss[list].is_array()) continue;
        for (const auto& a : ss[list]) {
          std::string ip = a.value("ip", "");
          if (is_loopback(ip)) return std::string("subsets[].") + list + "[].ip: Invalid value: \"" + ip +
                                      "\": may not be in the loopback range (127.0.0.0/8, ::1/128)";
        }
      }
    }
  }
  return "";
}

std::string verb_for(const std::string& method, bool has_name, bool watch) {
  if (method == "GET") return watch ? "watch" : (has_name ? "get" : "list");
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return has_name ? "delete" : "deletecollection";
  return "";
}

bool truthy(const std::string& v) { return v == "1" || v == "true" || v == "True"; }

template <class C>
bool send_chunk(C& conn, const std::string& data) {
  std::ostringstream os;
  os << std::hex << data.size() << "\r\n" << data << "\r\n";
  return conn.write_all(os.str());
}

}  // namespace

K8sEmulator::K8sEmulator() = default;

K8sEmulator::~K8sEmulator() {
  stop();
  if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
}

void K8sEmulator::start(int port) {
  if (running_) return;
  if (ssl_ctx_) {
    SSL_CTX_free(ssl_ctx_);
    ssl_ctx_ = nullptr;
  }
  listen_on(port);
}

void K8sEmulator::start_tls(const std::string& cert_pem_file, const std::string& key_pem_file, int port) {
  if (running_) return;
  if (ssl_ctx_) {
    SSL_CTX_free(ssl_ctx_);
    ssl_ctx_ = nullptr;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) throw std::runtime_error("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_pem_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_pem_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    SSL_CTX_free(ctx);
    throw std::runtime_error("cannot load " + cert_pem_file + " / " + key_pem_file + ": " + err);
  }
  ssl_ctx_ = ctx;
  listen_on(port);
}

void K8sEmulator::listen_on(int port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 128) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw std::runtime_error("bind/listen failed on port " + std::to_string(port));
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = false;
  }
  running_ = true;
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void K8sEmulator::stop() {
  if (!running_) return;
  running_ = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lk(conn_mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(conn_threads_);
  }
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

void K8sEmulator::accept_loop() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      if (errno == EINVAL || errno == EBADF) return;
      continue;
    }
    bool refuse;
    {
      std::lock_guard<std::mutex> lk(fault_mu_);
      ++connections_;
      refuse = refuse_;
    }
    if (refuse) {
      ::close(fd);
      continue;
    }
    std::lock_guard<std::mutex> lk(conn_mu_);
    open_fds_.insert(fd);
    conn_threads_.emplace_back([this, fd] { serve_connection(fd); });
  }
}

void K8sEmulator::serve_connection(int fd) {
  // OpenSSL writes with write(2): a peer that went away must give EPIPE, not kill the test
  // process. SIGPIPE raised by this thread stays pending on it and dies with it.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  SSL* ssl = nullptr;
  if (ssl_ctx_) {
    ssl = SSL_new(ssl_ctx_);
    if (ssl) SSL_set_fd(ssl, fd);
    if (!ssl || SSL_accept(ssl) != 1) {
      ERR_clear_error();
      if (ssl) SSL_free(ssl);
      std::lock_guard<std::mutex> lk(conn_mu_);
      open_fds_.erase(fd);
      ::close(fd);
      return;
    }
  }
  auto conn = std::make_unique<Conn>(fd, ssl);
  auto finish = [&] {
    std::lock_guard<std::mutex> lk(conn_mu_);
    open_fds_.erase(fd);
    watch_fds_.erase(fd);
    conn.reset();  // closes the fd while no other thread can shut it down
  };
  boost::beast::flat_buffer buf;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    boost::system::error_code ec;
    http::read(*conn, buf, parser, ec);
    if (ec) break;
    auto& hreq = parser.get();
    Request req;
    req.method = std::string(hreq.method_string());
    std::string target(hreq.target());
    auto q = target.find('?');
    req.path = url_decode(target.substr(0, q));
    if (q != std::string::npos) {
      std::stringstream ss(target.substr(q + 1));
      std::string kv;
      while (std::getline(ss, kv, '&')) {
        auto eq = kv.find('=');
        if (eq == std::string::npos)
          req.query[url_decode(kv)] = "";
        else
          req.query[url_decode(kv.substr(0, eq))] = url_decode(kv.substr(eq + 1));
      }
    }
    req.content_type = std::string(hreq[http::field::content_type]);
    auto sc = req.content_type.find(';');
    if (sc != std::string::npos) req.content_type = trim(req.content_type.substr(0, sc));
    req.authorization = std::string(hreq[http::field::authorization]);
    req.body = hreq.body();
    bool keep_alive = hreq.keep_alive();

    std::chrono::milliseconds delay;
    {
      std::lock_guard<std::mutex> lk(fault_mu_);
      ++requests_;
      std::string token;
      if (req.authorization.rfind("Bearer ", 0) == 0) token = trim(req.authorization.substr(7));
      auto& counts = requests_by_token_[token];
      if (req.method == "GET") ++counts.reads;
      else if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH" || req.method == "DELETE")
        ++counts.writes;
      delay = delay_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);

    Reply reply;
    bool watch = req.method == "GET" && truthy(req.query.count("watch") ? req.query["watch"] : "");
    bool faulted = false;
    {
      std::lock_guard<std::mutex> lk(fault_mu_);
      if (fail_count_ != 0 && fail_status_ != 0) {
        if (fail_count_ > 0) --fail_count_;
        reply.status = fail_status_;
        reply.body = status_json(fail_status_, reason_for(fail_status_), "injected failure");
        if (fail_status_ == 429) reply.headers["Retry-After"] = "1";
        faulted = true;
      }
    }
    if (!faulted) reply = handle(req);
    if (!faulted && watch && reply.status == 200 && reply.body.is_null()) {
      {
        std::lock_guard<std::mutex> lk(conn_mu_);
        watch_fds_.insert(fd);
      }
      serve_watch(req, *conn);
      break;  // a watch ends its connection
    }
    http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
    res.set(http::field::content_type, "application/json");
    for (auto& [k, v] : reply.headers) res.set(k, v);
    res.body() = reply.body.is_null() ? "" : reply.body.dump();
    res.keep_alive(keep_alive);
    res.prepare_payload();
    http::write(*conn, res, ec);
    if (ec || !keep_alive) break;
  }
  finish();
}

std::uint64_t K8sEmulator::next_rv_locked() { return ++rv_; }

void K8sEmulator::record_locked(Event ev) {
  history_.push_back(std::move(ev));
  trim_history_locked();
  cv_.notify_all();
}

void K8sEmulator::trim_history_locked() {
  while (history_.size() > history_limit_) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
}

K8sEmulator::Reply K8sEmulator::handle(const Request& req) {
  auto fail = [](int code, const std::string& msg, const std::string& reason = "") {
    Reply r;
    r.status = code;
    r.body = status_json(code, reason.empty() ? reason_for(code) : reason, msg);
    return r;
  };
  // /api/v1/namespaces/<ns>/<resource>[/<name>]
  std::vector<std::string> parts;
  {
    std::stringstream ss(req.path);
    std::string p;
    while (std::getline(ss, p, '/'))
      if (!p.empty()) parts.push_back(p);
  }
  if (parts.size() < 5 || parts.size() > 6 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" ||
      !kResources.count(parts[4]))
    return fail(404, "the server could not find the requested resource");
  const std::string ns = parts[3], resource = parts[4];
  const std::string name = parts.size() == 6 ? parts[5] : "";
  const std::string kind = kind_of(resource);
  auto qv = [&](const std::string& k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  bool watch = req.method == "GET" && truthy(qv("watch"));
  std::string verb = verb_for(req.method, !name.empty(), watch);
  if (verb.empty()) return fail(405, "method not allowed");

  std::unique_lock<std::mutex> lk(mu_);
  // Auth.
  if (!tokens_.empty()) {
    std::string token;
    if (req.authorization.rfind("Bearer ", 0) == 0) token = trim(req.authorization.substr(7));
    auto it = tokens_.find(token);
    if (token.empty() || it == tokens_.end()) return fail(401, "Unauthorized");
    if (it->second && !it->second->count({verb, resource}))
      return fail(403, resource + " is forbidden: User \"system:serviceaccount:" + ns +
                           ":test\" cannot " + verb + " resource \"" + resource + "\" in API group \"\" in the "
                           "namespace \"" + ns + "\"");
  }
  const std::string key = key_of(resource, ns, name);
  auto not_found = [&] { return fail(404, resource + " \"" + name + "\" not found"); };

  if (req.method == "GET") {
    if (watch) {
      if (!name.empty()) return fail(405, "watch of a single object: use fieldSelector=metadata.name=<name>");
      try {
        label_match(json::object(), qv("labelSelector"));
        field_match(json{{"metadata", json::object()}}, qv("fieldSelector"));
      } catch (const std::exception& e) {
        return fail(400, e.what());
      }
      return Reply{};  // null body: caller streams
    }
    if (!name.empty()) {
      auto it = store_.find(key);
      if (it == store_.end()) return not_found();
      return Reply{200, it->second, {}};
    }
    json items = json::array();
    std::string prefix = key_of(resource, ns, "");
    try {
      for (auto it = store_.lower_bound(prefix); it != store_.end() && it->first.rfind(prefix, 0) == 0; ++it)
        if (label_match(it->second, qv("labelSelector")) && field_match(it->second, qv("fieldSelector")))
          items.push_back(it->second);
    } catch (const std::exception& e) {
      return fail(400, e.what());
    }
    return Reply{200,
                 json{{"kind", kind + "List"},
                      {"apiVersion", "v1"},
                      {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                      {"items", items}},
                 {}};
  }

  json body;
  if (!req.body.empty()) {
    try {
      body = json::parse(req.body);
    } catch (const std::exception& e) {
      return fail(400, std::string("invalid JSON body: ") + e.what());
    }
  }

  if (req.method == "POST") {
    if (!name.empty()) return fail(405, "POST to a named object");
    if (!body.is_object()) return fail(400, "body must be an object");
    if (!body.contains("metadata") || !body["metadata"].is_object()) body["metadata"] = json::object();
    auto& md = body["metadata"];
    if (md.contains("namespace") && md["namespace"].is_string() && md["namespace"] != ns)
      return fail(400, "the namespace of the provided object does not match the namespace sent on the request");
    if ((!md.contains("name") || md["name"] == "") && md.contains("generateName") && md["generateName"].is_string())
      md["name"] = md["generateName"].get<std::string>() + make_uid().substr(0, 5);
    auto err = validate(resource, body);
    if (!err.empty()) return fail(422, kind + " \"" + md.value("name", "") + "\" is invalid: " + err);
    std::string n = md["name"];
    std::string k = key_of(resource, ns, n);
    if (store_.count(k)) return fail(409, resource + " \"" + n + "\" already exists", "AlreadyExists");
    body["kind"] = kind;
    body["apiVersion"] = "v1";
    md["namespace"] = ns;
    md["uid"] = make_uid();
    md["creationTimestamp"] = now_rfc3339();
    auto rv = next_rv_locked();
    md["resourceVersion"] = std::to_string(rv);
    store_[k] = body;
    record_locked(Event{rv, "ADDED", ns, resource, body, json()});
    return Reply{201, body, {}};
  }

  if (req.method == "DELETE") {
    if (name.empty()) {
      // deletecollection
      std::vector<std::string> keys;
      std::string prefix = key_of(resource, ns, "");
      json items = json::array();
      try {
        for (auto it = store_.lower_bound(prefix); it != store_.end() && it->first.rfind(prefix, 0) == 0; ++it)
          if (label_match(it->second, qv("labelSelector")) && field_match(it->second, qv("fieldSelector")))
            keys.push_back(it->first);
      } catch (const std::exception& e) {
        return fail(400, e.what());
      }
      for (auto& k : keys) {
        json obj = store_[k];
        store_.erase(k);
        auto rv = next_rv_locked();
        obj["metadata"]["resourceVersion"] = std::to_string(rv);
        items.push_back(obj);
        record_locked(Event{rv, "DELETED", ns, resource, obj, json()});
      }
      return Reply{200,
                   json{{"kind", kind + "List"},
                        {"apiVersion", "v1"},
                        {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                        {"items", items}},
                   {}};
    }
    auto it = store_.find(key);
    if (it == store_.end()) return not_found();
    json pre;
    if (body.is_object() && body.contains("preconditions")) pre = body["preconditions"];
    if (!qv("preconditions.resourceVersion").empty()) pre["resourceVersion"] = qv("preconditions.resourceVersion");
    if (pre.is_object()) {
      const auto& md = it->second["metadata"];
      if (pre.contains("resourceVersion") && pre["resourceVersion"].is_string() &&
          pre["resourceVersion"] != md["resourceVersion"])
        return fail(409,
                    "Operation cannot be fulfilled on " + resource + " \"" + name +
                        "\": Precondition failed: ResourceVersion in precondition: " +
                        pre["resourceVersion"].get<std::string>() + ", ResourceVersion in object meta: " +
                        md["resourceVersion"].get<std::string>(),
                    "Conflict");
      if (pre.contains("uid") && pre["uid"].is_string() && pre["uid"] != md["uid"])
        return fail(409, "Operation cannot be fulfilled on " + resource + " \"" + name +
                             "\": Precondition failed: UID in precondition", "Conflict");
    }
    json obj = it->second;
    store_.erase(it);
    auto rv = next_rv_locked();
    obj["metadata"]["resourceVersion"] = std::to_string(rv);
    record_locked(Event{rv, "DELETED", ns, resource, obj, json()});
    return Reply{200, obj, {}};
  }

  // PUT / PATCH: named object.
  if (name.empty()) return fail(405, req.method + " needs an object name");
  auto it = store_.find(key);
  json updated;
  if (req.method == "PUT") {
    if (!body.is_object()) return fail(400, "body must be an object");
    if (!body.contains("metadata") || !body["metadata"].is_object()) body["metadata"] = json::object();
    auto& md = body["metadata"];
    if (md.contains("name") && md["name"] != name)
      return fail(400, "the name of the object (" + md.value("name", "") +
                           ") does not match the name on the URL (" + name + ")");
    if (md.contains("namespace") && md["namespace"].is_string() && md["namespace"] != ns)
      return fail(400, "the namespace of the provided object does not match the namespace sent on the request");
    md["name"] = name;
    if (it == store_.end()) {
      if (resource != "endpoints") return not_found();  // only Endpoints allow create-on-update
      auto err = validate(resource, body);
      if (!err.empty()) return fail(422, kind + " \"" + name + "\" is invalid: " + err);
      body["kind"] = kind;
      body["apiVersion"] = "v1";
      md["namespace"] = ns;
      md["uid"] = make_uid();
      md["creationTimestamp"] = now_rfc3339();
      auto rv = next_rv_locked();
      md["resourceVersion"] = std::to_string(rv);
      store_[key] = body;
      record_locked(Event{rv, "ADDED", ns, resource, body, json()});
      return Reply{201, body, {}};
    }
    const auto& cur_md = it->second["metadata"];
    if (md.contains("resourceVersion") && md["resourceVersion"].is_string() && md["resourceVersion"] != "" &&
        md["resourceVersion"] != cur_md["resourceVersion"])
      return fail(409,
                  "Operation cannot be fulfilled on " + resource + " \"" + name +
                      "\": the object has been modified; please apply your changes to the latest version and try "
                      "again",
                  "Conflict");
    updated = body;
  } else {
    if (it == store_.end()) return not_found();
    if (body.is_null()) return fail(400, "empty patch");
    updated = it->second;
    const std::string& ct = req.content_type;
    if (ct == "application/merge-patch+json" || ct == "application/strategic-merge-patch+json") {
      if (!body.is_object()) return fail(400, "a merge patch must be a JSON object");
      if (body.contains("metadata") && body["metadata"].is_object() && body["metadata"].contains("resourceVersion") &&
          body["metadata"]["resourceVersion"].is_string() &&
          body["metadata"]["resourceVersion"] != it->second["metadata"]["resourceVersion"])
        return fail(409,
                    "Operation cannot be fulfilled on " + resource + " \"" + name +
                        "\": the object has been modified; please apply your changes to the latest version and "
                        "try again",
                    "Conflict");
      json patch = body;
      if (patch.contains("metadata") && patch["metadata"].is_object()) patch["metadata"].erase("resourceVersion");
      // Strategic merge: strip directives we do not model ($patch, $retainKeys...) at the top level.
      if (ct == "application/strategic-merge-patch+json") {
        for (auto k = patch.begin(); k != patch.end();) {
          if (!k.key().empty() && k.key()[0] == '$')
            k = patch.erase(k);
          else
            ++k;
        }
      }
      updated.merge_patch(patch);
    } else if (ct == "application/json-patch+json") {
      if (!body.is_array()) return fail(400, "a JSON patch must be an array");
      try {
        updated = updated.patch(body);
      } catch (const std::exception& e) {
        return fail(422, std::string("the JSON patch could not be applied: ") + e.what());
      }
    } else {
      return fail(415, "the body of the request was in an unknown format - accepted media types include: "
                       "application/json-patch+json, application/merge-patch+json, "
                       "application/apply-patch+yaml, application/strategic-merge-patch+json");
    }
    if (!updated.contains("metadata") || !updated["metadata"].is_object()) updated["metadata"] = json::object();
    if (updated["metadata"].value("resourceVersion", "") != it->second["metadata"].value("resourceVersion", ""))
      return fail(409, "Operation cannot be fulfilled on " + resource + " \"" + name +
                           "\": the object has been modified", "Conflict");
  }
  // Immutable / server-owned fields.
  const json& old = it->second;
  auto& md = updated["metadata"];
  md["name"] = name;
  md["namespace"] = ns;
  md["uid"] = old["metadata"]["uid"];
  md["creationTimestamp"] = old["metadata"]["creationTimestamp"];
  md["resourceVersion"] = old["metadata"]["resourceVersion"];
  updated["kind"] = kind;
  updated["apiVersion"] = "v1";
  auto err = validate(resource, updated);
  if (!err.empty()) return fail(422, kind + " \"" + name + "\" is invalid: " + err);
  if (updated == old) return Reply{200, old, {}};  // no-op: no new resourceVersion
  auto rv = next_rv_locked();
  md["resourceVersion"] = std::to_string(rv);
  json prev = old;
  it->second = updated;
  record_locked(Event{rv, "MODIFIED", ns, resource, updated, prev});
  return Reply{200, updated, {}};
}

void K8sEmulator::serve_watch(const Request& req, Conn& conn) {
  auto qv = [&](const std::string& k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  std::vector<std::string> parts;
  {
    std::stringstream ss(req.path);
    std::string p;
    while (std::getline(ss, p, '/'))
      if (!p.empty()) parts.push_back(p);
  }
  const std::string ns = parts[3], resource = parts[4];
  const std::string lsel = qv("labelSelector"), fsel = qv("fieldSelector");
  auto matches = [&](const json& obj) {
    if (!obj.is_object()) return false;
    try {
      return label_match(obj, lsel) && field_match(obj, fsel);
    } catch (const std::exception&) {
      return false;
    }
  };
  auto deadline = std::chrono::steady_clock::time_point::max();
  if (!qv("timeoutSeconds").empty()) {
    try {
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::stol(qv("timeoutSeconds")));
    } catch (const std::exception&) {
    }
  }
  if (!conn.write_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n"))
    return;
  auto event_line = [](const std::string& type, const json& obj) {
    return json{{"type", type}, {"object", obj}}.dump() + "\n";
  };
  auto gone_line = [&](std::uint64_t rv) {
    return event_line("ERROR", status_json(410, "Expired", "too old resource version: " + std::to_string(rv)));
  };

  std::vector<std::string> out;
  std::uint64_t cursor = 0;
  std::uint64_t gen = 0;
  bool end = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    gen = watch_gen_;
    std::string rvs = qv("resourceVersion");
    std::uint64_t want = 0;
    bool bad = false;
    try {
      if (!rvs.empty()) want = std::stoull(rvs);
    } catch (const std::exception&) {
      bad = true;
    }
    if (bad) {
      out.push_back(event_line("ERROR", status_json(400, "BadRequest", "invalid resourceVersion: " + rvs)));
      end = true;
    } else if (want == 0) {
      // Unset or "0": synthetic ADDED for the current state, then follow.
      std::string prefix = key_of(resource, ns, "");
      for (auto it = store_.lower_bound(prefix); it != store_.end() && it->first.rfind(prefix, 0) == 0; ++it)
        if (matches(it->second)) out.push_back(event_line("ADDED", it->second));
      cursor = rv_;
    } else if (want < compacted_rv_) {
      out.push_back(gone_line(want));
      end = true;
    } else {
      cursor = want;
    }
  }
  for (;;) {
    for (auto& line : out)
      if (!send_chunk(conn, line)) return;
    out.clear();
    if (end) break;
    std::unique_lock<std::mutex> lk(mu_);
    auto ready = [&] {
      return stopping_ || watch_gen_ != gen || cursor < compacted_rv_ ||
             (!history_.empty() && history_.back().rv > cursor);
    };
    if (deadline == std::chrono::steady_clock::time_point::max())
      cv_.wait(lk, ready);
    else if (!cv_.wait_until(lk, deadline, ready))
      break;  // timeoutSeconds reached
    if (stopping_ || watch_gen_ != gen) return;  // dropped: cut without a clean end
    if (cursor < compacted_rv_) {
      out.push_back(gone_line(cursor));
      end = true;
      continue;
    }
    for (const auto& ev : history_) {
      if (ev.rv <= cursor) continue;
      cursor = ev.rv;
      if (ev.ns != ns || ev.resource != resource) continue;
      if (ev.type == "MODIFIED") {
        bool om = matches(ev.old), nm = matches(ev.object);
        if (om && nm)
          out.push_back(event_line("MODIFIED", ev.object));
        else if (om)
          out.push_back(event_line("DELETED", ev.object));
        else if (nm)
          out.push_back(event_line("ADDED", ev.object));
      } else if (matches(ev.object)) {
        out.push_back(event_line(ev.type, ev.object));
      }
    }
  }
  conn.write_all("0\r\n\r\n");
}

// ---- auth ----
void K8sEmulator::add_token(const std::string& token) {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_[token] = std::nullopt;
}
void K8sEmulator::add_token(const std::string& token, std::set<std::pair<std::string, std::string>> allowed) {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_[token] = std::move(allowed);
}
void K8sEmulator::remove_token(const std::string& token) {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_.erase(token);
}
void K8sEmulator::clear_tokens() {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_.clear();
}

// ---- faults ----
void K8sEmulator::set_refuse_connections(bool refuse) {
  {
    std::lock_guard<std::mutex> lk(fault_mu_);
    refuse_ = refuse;
  }
  if (refuse) {
    std::lock_guard<std::mutex> lk(conn_mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
}
void K8sEmulator::fail_next(int status, int count) {
  std::lock_guard<std::mutex> lk(fault_mu_);
  fail_status_ = status;
  fail_count_ = count;
}
void K8sEmulator::clear_failures() {
  std::lock_guard<std::mutex> lk(fault_mu_);
  fail_status_ = 0;
  fail_count_ = 0;
}
void K8sEmulator::set_delay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lk(fault_mu_);
  delay_ = delay;
}
void K8sEmulator::drop_watches() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++watch_gen_;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> lk(conn_mu_);
  for (int fd : watch_fds_) ::shutdown(fd, SHUT_RDWR);
}

// ---- state helpers ----
json K8sEmulator::get(const std::string& ns, const std::string& resource, const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = store_.find(key_of(resource, ns, name));
  return it == store_.end() ? json() : it->second;
}

void K8sEmulator::put_raw(const std::string& ns, const std::string& resource, json obj) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
  auto& md = obj["metadata"];
  std::string name = md.value("name", "");
  std::string k = key_of(resource, ns, name);
  auto it = store_.find(k);
  if (!obj.contains("kind")) obj["kind"] = kind_of(resource);
  if (!obj.contains("apiVersion")) obj["apiVersion"] = "v1";
  md["namespace"] = ns;
  if (!md.contains("uid")) md["uid"] = it != store_.end() ? it->second["metadata"]["uid"] : json(make_uid());
  if (!md.contains("creationTimestamp")) md["creationTimestamp"] = now_rfc3339();
  auto rv = next_rv_locked();
  md["resourceVersion"] = std::to_string(rv);
  json prev = it != store_.end() ? it->second : json();
  store_[k] = obj;
  record_locked(Event{rv, prev.is_null() ? "ADDED" : "MODIFIED", ns, resource, obj, prev});
}

bool K8sEmulator::delete_raw(const std::string& ns, const std::string& resource, const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = store_.find(key_of(resource, ns, name));
  if (it == store_.end()) return false;
  json obj = it->second;
  store_.erase(it);
  auto rv = next_rv_locked();
  obj["metadata"]["resourceVersion"] = std::to_string(rv);
  record_locked(Event{rv, "DELETED", ns, resource, obj, json()});
  return true;
}

std::uint64_t K8sEmulator::resource_version() {
  std::lock_guard<std::mutex> lk(mu_);
  return rv_;
}

void K8sEmulator::set_history_limit(std::size_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  history_limit_ = n;
  trim_history_locked();
  cv_.notify_all();
}

std::uint64_t K8sEmulator::request_count() {
  std::lock_guard<std::mutex> lk(fault_mu_);
  return requests_;
}

K8sEmulator::RequestCounts K8sEmulator::requests_by_token(const std::string& token) {
  std::lock_guard<std::mutex> lk(fault_mu_);
  auto it = requests_by_token_.find(token);
  return it == requests_by_token_.end() ? RequestCounts{} : it->second;
}

std::uint64_t K8sEmulator::connection_count() {
  std::lock_guard<std::mutex> lk(fault_mu_);
  return connections_;
}

// ---- client helpers ----
HttpReply k8s_request(int port, const std::string& method, const std::string& target, const std::string& body,
                      const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout) {
  HttpReply reply;
  try {
    boost::asio::io_context ioc;
    boost::beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    stream.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::accept, "application/json");
    for (auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream, req);
    boost::beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buf, parser);
    auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    for (auto& h : res) {
      std::string name(h.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(h.value());
    }
  } catch (const std::exception&) {
  }
  return reply;
}

std::vector<json> parse_watch_events(const std::string& body) {
  std::vector<json> out;
  std::stringstream ss(body);
  std::string line;
  while (std::getline(ss, line)) {
    if (trim(line).empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace pgwarden::test
