#pragma once
// Encoding helpers for etcd's HTTP/JSON gateway: bytes travel as base64, int64 fields come
// back as JSON strings, empty fields are omitted, and streamed replies are concatenated JSON
// objects. Pure functions so they can be tested without a server.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::dcs::etcd {

std::string base64_encode(std::string_view raw);
// Returns false (and leaves `out` unspecified) for input that is not valid base64.
bool base64_decode(std::string_view b64, std::string& out);

// Patroni's key prefix: "/" + namespace + "/" + scope + "/", runs of '/' collapsed.
// ("/service/", "batman") -> "/service/batman/"; ("service", "batman") -> "/service/batman/".
std::string cluster_prefix(const std::string& namespace_, const std::string& scope);

// The range_end that selects every key starting with `prefix` (etcd's prefix convention).
std::string prefix_range_end(const std::string& prefix);

// An int64 that the gateway may send as a string or a number; `fallback` when absent/bad.
int64_t json_int64(const nlohmann::json& obj, const char* field, int64_t fallback = 0);

// One decoded key-value as etcd reports it.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

// Decodes one "kv" object from a range response or a watch event. Returns false if the key
// is missing or not base64.
bool decode_kv(const nlohmann::json& kv, KeyValue& out);

// Decodes the "kvs" list of a range response; undecodable entries are skipped.
std::vector<KeyValue> decode_kvs(const nlohmann::json& range_response);

// What a lease keep-alive answer says: {"result": {"header": {"revision": ..}, "ID": ..,
// "TTL": ..}}, TTL omitted once the lease expired.
struct KeepAliveAnswer {
  int64_t ttl = 0;       // 0: the lease is gone
  int64_t revision = 0;  // 0: etcd did not say
};

// Reads those fields straight from the body (the first JSON object of it) without building a
// document: a leader gets this answer every loop_wait. nullopt for anything else (an "error"
// object, no "result", not JSON, a field of the wrong type): the caller then takes the general
// path, which reports it.
std::optional<KeepAliveAnswer> read_keepalive_answer(std::string_view body);

// Accumulates a streamed body (e.g. /v3/watch) and hands out the complete top-level JSON
// objects as they arrive; a partial trailing object is kept for the next feed().
class JsonObjectStream {
 public:
  // Appends `data` and returns the objects completed by it. Text between objects that is
  // not JSON (or an object that fails to parse) is dropped.
  std::vector<nlohmann::json> feed(std::string_view data);

 private:
  std::string buf_;
};

}  // namespace pgwarden::dcs::etcd
