// The backup runner: one pgbackrest at a time on its own thread, the history kept under a
// mutex, `pgbackrest info` read at start, after each backup and when a GET finds it stale.
#include "pgwarden/backup/service.hpp"

#include <spdlog/spdlog.h>

#include <set>

namespace pgwarden::backup {

namespace {

constexpr size_t kStderrLines = 20;
constexpr size_t kMaxOutput = 256 * 1024;
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kDefaultShutdownGrace = std::chrono::seconds(10);

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The last `n` non-empty lines of `text`.
std::string tail_lines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(std::move(line));
    start = end + 1;
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

}  // namespace

BackupService::BackupService(ServiceOptions options) : opts_(std::move(options)) {}

BackupService::~BackupService() { shutdown(kDefaultShutdownGrace); }

std::vector<BackupRecord> BackupService::history() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_;
}

BackupRecord* BackupService::find_locked(const std::string& label) {
  for (auto& b : history_)
    if (b.label == label) return &b;
  return nullptr;
}

bool BackupService::refresh_history() {
  std::lock_guard<std::mutex> refresh(refresh_mu_);
  util::Command cmd;
  cmd.argv = {opts_.command,  "--stanza=" + opts_.stanza, "--log-level-console=off", "--log-level-stderr=error", "info",
              "--output=json"};
  cmd.env = opts_.env;
  auto res = util::run(cmd, opts_.info_timeout);
  {
    std::lock_guard<std::mutex> lock(mu_);
    info_read_at_ = std::chrono::steady_clock::now();
    info_read_ = true;
  }
  if (!res) {
    spdlog::warn("backup API: cannot run {} info: {}", opts_.command, res.status().message());
    return false;
  }
  if (res->exit_code != 0) {
    spdlog::warn("backup API: {} info failed (exit code {}): {}", opts_.command, res->exit_code,
                 tail_lines(res->output, 3));
    return false;
  }
  // An error line before the document would not be JSON; the document is one array.
  auto begin = res->output.find('[');
  auto info = nlohmann::json::parse(begin == std::string::npos ? "" : res->output.substr(begin), nullptr, false);
  std::lock_guard<std::mutex> lock(mu_);
  if (info.is_discarded() || !merge_info(history_, info, opts_.stanza)) {
    spdlog::warn("backup API: {} info printed no stanza {}: {}", opts_.command, opts_.stanza,
                 tail_lines(res->output, 3));
    return false;
  }
  return true;
}

api::HttpResponse BackupService::handle(const api::HttpRequest& req) {
  if (req.method == "GET") {
    bool stale;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stale = !info_read_ || std::chrono::steady_clock::now() - info_read_at_ > opts_.info_max_age;
    }
    if (stale) refresh_history();
  }
  ApiSnapshot snap;
  if (req.method == "POST" && opts_.probe_role) snap.role = opts_.probe_role();
  {
    std::lock_guard<std::mutex> lock(mu_);
    snap.backups = history_;
  }
  snap.now = epoch_now();
  Routed routed = route(req, snap);
  if (!routed.start_type) return routed.response;

  // Accepted: start it, unless another POST won the race or we are shutting down.
  const std::string type = *routed.start_type;
  std::thread previous;
  std::string label;
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return error_response(503, "the backup API is shutting down");
  for (const auto& b : history_)
    if (b.status == BackupStatus::kRunning) return conflict_response(b);
  std::set<std::string> taken;
  for (const auto& b : history_) taken.insert(b.label);
  BackupRecord rec;
  rec.started = epoch_now();
  rec.label = make_label(rec.started, taken);
  rec.type = type;
  rec.status = BackupStatus::kRunning;
  rec.ours = true;
  label = rec.label;
  history_.push_back(std::move(rec));
  previous = std::move(runner_);
  runner_ = std::thread([this, label, type] { run_backup(label, type); });
  spdlog::info("backup API: starting {} backup {} of stanza {}", type, label, opts_.stanza);
  changed_.wait_for(lock, opts_.start_wait, [&] {
    const BackupRecord* b = find_locked(label);
    return !b || b->status != BackupStatus::kRunning;
  });
  BackupRecord copy = *find_locked(label);
  lock.unlock();
  // The previous runner has finished its backup; it may still be reading `info`.
  if (previous.joinable()) previous.join();
  return started_response(copy, epoch_now());
}

int BackupService::run_step(const std::string& label, const std::vector<std::string>& args, std::string& output) {
  util::Command cmd;
  cmd.argv = {opts_.command, "--stanza=" + opts_.stanza, "--log-level-console=off", "--log-level-stderr=warn"};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.env = opts_.env;
  auto started = util::BackgroundProcess::start(cmd);
  if (!started) {
    output += started.status().message() + "\n";
    return 127;
  }
  auto& proc = *started;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto* b = find_locked(label)) b->pid = proc->pid();
  }
  auto append = [&](std::string more) {
    output += more;
    if (output.size() > kMaxOutput) output.erase(0, output.size() - kMaxOutput);
  };
  for (;;) {
    if (auto code = proc->poll()) {
      append(proc->take_output());
      return *code;
    }
    append(proc->take_output());
    bool stop;
    std::chrono::milliseconds grace;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait_for(lock, kPollInterval, [&] { return stopping_; });
      stop = stopping_;
      grace = shutdown_grace_;
    }
    if (stop) {
      spdlog::info("backup API: shutting down: stopping pgbackrest (pid {})", proc->pid());
      proc->terminate(grace);
      append(proc->take_output());
      auto code = proc->poll();
      return code ? *code : -1;
    }
  }
}

void BackupService::finish(const std::string& label, int code, const std::string& output) {
  std::lock_guard<std::mutex> lock(mu_);
  BackupRecord* b = find_locked(label);
  if (!b) return;
  b->returncode = code;
  b->finished = epoch_now();
  b->status = code == 0 ? BackupStatus::kFinished : BackupStatus::kFailed;
  b->stderr_tail = tail_lines(output, kStderrLines);
  if (code == 0)
    spdlog::info("backup API: {} backup {} finished", b->type, label);
  else
    spdlog::error("backup API: {} backup {} failed with exit code {}: {}", b->type, label, code,
                  tail_lines(output, 1).empty() ? "no output" : tail_lines(output, 1).substr(0, 300));
  changed_.notify_all();
}

void BackupService::run_backup(std::string label, std::string type) {
  std::string output;
  // stanza-create is idempotent, so a fresh cluster's first backup works too; its failure is
  // the backup's failure.
  int code = run_step(label, {"stanza-create"}, output);
  if (code == 0) code = run_step(label, {"backup", "--type=" + type}, output);
  finish(label, code, output);
  bool stop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop = stopping_;
  }
  if (!stop) refresh_history();
}

void BackupService::shutdown(std::chrono::milliseconds grace) {
  std::thread runner;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    shutdown_grace_ = grace;
    runner = std::move(runner_);
    changed_.notify_all();
  }
  if (runner.joinable()) runner.join();
}

std::string resolve_stanza(const std::string& configured, const util::Environment& env) {
  if (!configured.empty()) return configured;
  auto it = env.find("PGBACKREST_STANZA");
  if (it != env.end() && !it->second.empty()) return it->second;
  return "poddb";
}

}  // namespace pgwarden::backup
