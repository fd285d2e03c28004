#pragma once
// The pure parts of `pgwarden ctl`: how patronictl 3.0.2 prints things (PrettyTable frames
// with the cluster title in the top rule, tsv, json, yaml as PyYAML's safe_dump writes it),
// the member rows of `list`/`topology`, `edit-config`'s --set/--pg semantics and its unified
// diff. No I/O, so all of it is unit-tested.
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pgwarden/util/status.hpp"

namespace pgwarden::ctl {

// A value as PyYAML's yaml.safe_dump(data, default_flow_style=False, allow_unicode=True)
// writes it: keys sorted, block style, sequences not indented under their key, strings
// quoted only when a plain scalar would read back as something else.
std::string to_yaml(const nlohmann::json& value);

// Python's json.dumps: ", " and ": " separators, non-ASCII escaped, keys in `value`'s order.
std::string python_json(const nlohmann::ordered_json& value);

// Python's round(): halves go to the even neighbour.
long long python_round(double x);

// One table: column names and rows of cells (strings, numbers, null for an empty cell).
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::json>> rows;
  std::set<std::string> right_aligned;  // column names aligned right (TL, Lag in MB, ...)
};

// The text of a cell as Python's str() gives it (strings as is, 1.5, True, None -> "").
std::string cell_text(const nlohmann::json& cell);

// PrettyTable's FRAME output (ALL when a cell spans several lines), left aligned except
// `right_aligned`, with `title` (e.g. " Cluster: batman (7231) ") written over the top rule.
std::string render_pretty(const Table& t, const std::string& title = "");
// Columns and rows separated by `delimiter`, header first.
std::string render_tsv(const Table& t, const std::string& delimiter = "\t");
// A JSON/YAML list with one object per row; with `skip_empty`, cells whose text is empty are
// left out (patronictl does that for member lists).
std::string render_json(const Table& t, bool skip_empty);
std::string render_yaml(const Table& t, bool skip_empty);

// `list`'s table from a cluster_as_json document ({members, pause?, scheduled_switchover?}).
// `sysid` is the initialize key (nullopt: "uninitialized", "": "initializing").
struct ListOptions {
  std::string cluster_name;
  std::optional<std::string> sysid;
  bool extended = false;   // -e: Pending restart, Scheduled restart and Tags always shown
  std::string fmt = "pretty";  // pretty, topology, tsv, json, yaml
};
Table member_table(const nlohmann::json& cluster, const ListOptions& o);
// The whole `list`/`topology` output in `o.fmt` (service lines such as "Maintenance mode: on"
// for pretty and topology only).
std::string render_member_list(const nlohmann::json& cluster, const ListOptions& o);
// The title patronictl writes into the top rule: " Cluster: <name> (<sysid>) ".
std::string cluster_title(const std::string& name, const std::optional<std::string>& sysid);

// Lag of a replica in whole MB as patronictl shows it; non-integers ("unknown") unchanged.
nlohmann::json lag_in_mb(const nlohmann::json& lag_bytes);

// `history`'s table: [TL, LSN, Reason, Timestamp, New Leader], short lines padded.
Table history_table(const nlohmann::json& history);

// edit-config -s key=value / -p name=value: dotted paths into the document, values read as
// YAML (null removes the key; empty mappings left behind are removed); below
// postgresql.parameters the rest of the path is one name (GUCs may contain dots). kInvalid
// for a pair without '=' or a value that is not YAML.
Result<nlohmann::json> apply_set_pairs(const nlohmann::json& config, const std::vector<std::string>& set_pairs,
                                       const std::vector<std::string>& pg_pairs = {});

// Parses YAML text (PyYAML's safe_load resolution: yes/no are booleans, 0750 octal ...).
Result<nlohmann::json> parse_yaml_text(const std::string& text);

// difflib.unified_diff(a.splitlines, b.splitlines) with three lines of context, as
// patronictl prints it to a pipe: "--- ", "+++ ", "@@ -l,n +l,n @@" hunks. Empty when equal.
std::string unified_diff(const std::string& before, const std::string& after);

}  // namespace pgwarden::ctl
