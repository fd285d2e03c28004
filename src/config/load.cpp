// Entry points: YAML text or file + environment → typed, validated Config.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config_internal.hpp"

namespace pgwarden::config {
namespace {

using nlohmann::json;

LoadResult build(json doc, const util::Environment& env, const std::string& source_name, LoadResult res) {
  if (doc.is_null()) doc = json::object();
  if (!doc.is_object()) {
    res.errors.push_back(source_name + ": expected a mapping at the top level, got " + detail::describe(doc, ""));
    return res;
  }
  detail::patch_config(doc, detail::env_configuration(env, &res.warnings));
  detail::warn_unknown_keys(doc, &res.warnings);

  Config cfg;
  cfg.source_path = source_name;
  detail::Problems p;
  detail::fill_general(doc, cfg, p);
  detail::fill_dcs(doc, cfg, p);
  detail::fill_postgresql(doc, env, cfg, p);
  detail::fill_bootstrap(doc, cfg, p);
  cfg.raw = std::move(doc);

  res.errors.insert(res.errors.end(), p.errors.begin(), p.errors.end());
  res.warnings.insert(res.warnings.end(), p.warnings.begin(), p.warnings.end());
  if (res.errors.empty()) res.config = std::move(cfg);
  return res;
}

LoadResult load_document(const std::string& text, const util::Environment& env, const std::string& source_name) {
  std::string error;
  auto doc = detail::parse_yaml(text, &error);
  if (!doc) {
    LoadResult res;
    res.errors.push_back(source_name + ": YAML syntax error at " + error);
    return res;
  }
  return build(std::move(*doc), env, source_name, LoadResult{});
}

std::optional<std::string> read_text(const std::string& path, std::string* reason) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *reason = std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) {
    *reason = std::strerror(errno);
    return std::nullopt;
  }
  return ss.str();
}

}  // namespace

LoadResult load_from_string(const std::string& yaml_text, const util::Environment& env,
                            const std::string& source_name) {
  try {
    return load_document(yaml_text, env, source_name);
  } catch (const std::exception& e) {
    LoadResult res;
    res.errors.push_back(source_name + ": cannot load configuration: " + e.what());
    return res;
  }
}

LoadResult load_from_file(const std::string& path, const util::Environment& env) {
  try {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      LoadResult res;
      res.errors.push_back(path + ": cannot read configuration file: " + std::strerror(errno));
      return res;
    }
    if (!S_ISDIR(st.st_mode)) {
      std::string reason;
      auto text = read_text(path, &reason);
      if (!text) {
        LoadResult res;
        res.errors.push_back(path + ": cannot read configuration file: " + reason);
        return res;
      }
      return load_document(*text, env, path);
    }
    // Like Patroni: a directory means every *.yml / *.yaml file in it, in name order, merged.
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      auto name = entry.path().filename().string();
      bool yaml = name.size() > 4 && (name.ends_with(".yml") || name.ends_with(".yaml"));
      if (yaml && entry.is_regular_file()) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    json merged = json::object();
    for (const auto& file : files) {
      LoadResult res;
      std::string reason, error;
      auto text = read_text(file, &reason);
      if (!text) {
        res.errors.push_back(file + ": cannot read configuration file: " + reason);
        return res;
      }
      auto doc = detail::parse_yaml(*text, &error);
      if (!doc) {
        res.errors.push_back(file + ": YAML syntax error at " + error);
        return res;
      }
      detail::patch_config(merged, *doc);
    }
    return build(std::move(merged), env, path, LoadResult{});
  } catch (const std::exception& e) {
    LoadResult res;
    res.errors.push_back(path + ": cannot read configuration file: " + e.what());
    return res;
  }
}

}  // namespace pgwarden::config
