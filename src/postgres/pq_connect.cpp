#include "pq_connect.hpp"

namespace pgwarden::postgres::pq {
namespace {

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

}  // namespace

Result<ConnPtr> connect(const Params& params) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  ConnPtr c(PQconnectdbParams(keys.data(), values.data(), 0));
  if (!c || PQstatus(c.get()) != CONNECTION_OK)
    return Status::Unavailable("cannot connect to PostgreSQL: " + trim(c ? PQerrorMessage(c.get()) : "out of memory"));
  return c;
}

Params local_superuser_params(const Postgres& pg) {
  const auto& su = pg.config().postgresql.superuser;
  Params kv{{"dbname", "postgres"},
            {"user", su.username},
            {"port", std::to_string(pg.local_port())},
            {"connect_timeout", "3"},
            {"application_name", "pgwarden"}};
  if (auto h = pg.local_host(); !h.empty()) kv.emplace_back("host", h);
  if (!su.password.empty()) kv.emplace_back("password", su.password);
  for (const auto& [k, v] : su.extra) kv.emplace_back(k, v);
  return kv;
}

bool ok(PGresult* r) {
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

std::string error(PGresult* r) {
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  return primary ? primary : "query failed";
}

Result<ResultPtr> exec(PGconn* c, const std::string& sql, const std::vector<std::string>& args) {
  std::vector<const char*> values;
  for (const auto& a : args) values.push_back(a.c_str());
  ResultPtr r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.empty() ? nullptr : values.data(), nullptr, nullptr, 0));
  if (!ok(r.get())) return Status::Failed(error(r.get()));
  return r;
}

}  // namespace pgwarden::postgres::pq
