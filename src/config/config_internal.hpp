#pragma once
// Pieces shared by the config module's translation units. Not part of the public API.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pgwarden/config/config.hpp"
#include "pgwarden/util/process.hpp"

namespace pgwarden::config::detail {

using nlohmann::json;

// --- YAML (yaml_json.cpp) ---------------------------------------------------------------
// Parses YAML text the way PyYAML's safe_load resolves plain scalars (YAML 1.1: yes/no/on/off
// are booleans, 0750 is octal), so a config means the same thing here as in Patroni.
// On a syntax error returns nullopt and sets `error` to "line L, column C: msg".
std::optional<json> parse_yaml(const std::string& text, std::string* error);

// --- environment (env_overrides.cpp) ----------------------------------------------------
// The document Patroni builds from PATRONI_* variables (Config._build_environment_configuration).
json env_configuration(const util::Environment& env, std::vector<std::string>* warnings);
// Patroni's utils.patch_config: recursive merge, `data` wins, null removes a key.
void patch_config(json& config, const json& data);

// --- values (values.cpp) ----------------------------------------------------------------
std::string join_path(const std::string& prefix, const std::string& key);
// Whether the value at `path` may be a secret and must never be echoed in a message.
bool is_secret_path(const std::string& path);
// "string \"abc\"", "integer 5", "mapping", ... (value hidden for secret paths).
std::string describe(const json& v, const std::string& path);
// Python int(): integers, bools, floats (truncated), numeric strings ("10", " 10 ", "1_0").
std::optional<int64_t> py_int(const json& v);
// Patroni's parse_bool: on/true/yes/1 and off/false/no/0 (any case), JSON booleans.
std::optional<bool> py_bool(const json& v);
// Python truthiness (for tags).
bool truthy(const json& v);
// The text a scalar stands for: strings as is, numbers as written, booleans true/false.
std::string scalar_text(const json& v);
// Patroni's split_host_port: "h:p", "h1,h2:p", "[::1]:p", ":p". Port must be 1-65535.
// Without a port, `default_port` is used (nullopt: the port is required).
std::optional<HostPort> split_host_port(const std::string& value, std::optional<int> default_port);

// The member of `obj` named `key`, or nullptr when `obj` is not a mapping, the key is
// absent or its value is null (YAML `key:` with nothing after it means "not set").
const json* field(const json& obj, const std::string& key);

// Typed readers: report "<path>: expected X, got Y" into `errors` and return nullopt when
// the value has the wrong type.
std::optional<std::string> read_string(const json& v, const std::string& path, std::vector<std::string>* errors);
std::optional<int64_t> read_int(const json& v, const std::string& path, std::vector<std::string>* errors);
std::optional<bool> read_bool(const json& v, const std::string& path, std::vector<std::string>* errors);
std::optional<std::vector<std::string>> read_string_list(const json& v, const std::string& path,
                                                         std::vector<std::string>* errors);
void expected(const std::string& path, const std::string& what, const json& got, std::vector<std::string>* errors);

// Reads the member if present; leaves `out` untouched otherwise or on error.
void read_into(const json& obj, const std::string& key, const std::string& prefix, std::string& out,
               std::vector<std::string>* errors);
void read_into(const json& obj, const std::string& key, const std::string& prefix, bool& out,
               std::vector<std::string>* errors);
void read_into(const json& obj, const std::string& key, const std::string& prefix, int& out,
               std::vector<std::string>* errors);

// --- schema (schema.cpp) ----------------------------------------------------------------
// One warning per key Patroni does not know ("unknown configuration key: restapi.foo").
void warn_unknown_keys(const json& doc, std::vector<std::string>* warnings);

// --- typed config (typed_*.cpp) -----------------------------------------------------------
struct Problems {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};
void fill_general(const json& doc, Config& cfg, Problems& p);
void fill_dcs(const json& doc, Config& cfg, Problems& p);
void fill_postgresql(const json& doc, const util::Environment& env, Config& cfg, Problems& p);
void fill_bootstrap(const json& doc, Config& cfg, Problems& p);

// --- dynamic (dynamic.cpp) --------------------------------------------------------------
DynamicConfig merge_dynamic_at(const DynamicConfig& base, const json& dcs, const std::string& prefix,
                               std::vector<std::string>* errors);

}  // namespace pgwarden::config::detail
