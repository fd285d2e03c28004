// CallbackExecutor: arguments, scrubbed environment, one-at-a-time slots, logging.
#include "pgwarden/util/callbacks.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <mutex>
#include <sstream>

#include "support/harness.hpp"

namespace pgwarden::util {
namespace {

using namespace std::chrono_literals;

// A process counts as gone once it no longer exists or is a zombie nobody reaped yet.
bool alive(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return false;
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

int read_pid(const std::string& path) {
  std::ifstream f(path);
  int pid = -1;
  f >> pid;
  return pid;
}

// Captures everything logged through spdlog's default logger while alive. The sink's own
// mutex (base_sink) guards writes; reads take the same lock.
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    text_.append(msg.payload.data(), msg.payload.size());
    text_ += "\n";
  }
  void flush_() override {}

 private:
  std::string text_;
};

class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()), sink_(std::make_shared<CaptureSink>()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() { return sink_->text(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<CaptureSink> sink_;
};

class CallbacksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Records argv and environment, prints a line, then behaves per action.
    script_ = dir_.file("callback.sh");
    test::write_file(script_,
                     "#!/bin/sh\n"
                     "dir=\"" + dir_.path() + "\"\n"
                     "echo \"$@\" > \"$dir/argv_$1.tmp\" && mv \"$dir/argv_$1.tmp\" \"$dir/argv_$1\"\n"
                     "env > \"$dir/env_$1\"\n"
                     "echo \"hello from $1\"\n"
                     "case \"$1\" in\n"
                     "  on_role_change) sleep 30 & echo $! > \"$dir/sleep_pid\"; echo $$ > \"$dir/pid_$1\"; wait ;;\n"
                     "  on_restart) exit 3 ;;\n"
                     "esac\n",
                     0755);
    env_ = {{"PATH", "/usr/bin:/bin"}, {"KEEP_ME", "yes"}, {"PATRONI_SUPERUSER_PASSWORD", "secret"},
            {"PATRONI_NAME", "node1"}, {"PATRONICTL_CONFIG_FILE", "/etc/p.yaml"}};
  }

  std::map<std::string, std::string> all_actions() {
    std::map<std::string, std::string> cmds;
    for (const char* a : {"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"}) cmds[a] = script_;
    return cmds;
  }

  bool wait_file(const std::string& name, std::chrono::milliseconds timeout = 10s) {
    return test::wait_until([&] { return test::file_exists(dir_.file(name)); }, timeout);
  }

  test::TempDir dir_{"pgwarden-callbacks"};
  std::string script_;
  Environment env_;
};

TEST_F(CallbacksTest, ArgumentsAndScrubbedEnvironment) {
  CallbackExecutor ex(all_actions(), env_, "demo");
  ex.fire("on_start", "master");
  ASSERT_TRUE(wait_file("argv_on_start"));
  EXPECT_EQ(test::read_file(dir_.file("argv_on_start")), "on_start master demo\n");
  ASSERT_TRUE(test::wait_until([&] { return test::read_file(dir_.file("env_on_start")).find("KEEP_ME") != std::string::npos; }, 5s));
  std::string env = test::read_file(dir_.file("env_on_start"));
  EXPECT_NE(env.find("KEEP_ME=yes"), std::string::npos) << env;
  EXPECT_NE(env.find("PATRONICTL_CONFIG_FILE=/etc/p.yaml"), std::string::npos) << env;
  EXPECT_EQ(env.find("PATRONI_"), std::string::npos) << env;
  EXPECT_EQ(env.find("secret"), std::string::npos) << env;
}

TEST_F(CallbacksTest, CommandLineIsShellSplit) {
  CallbackExecutor ex({{"on_start", script_ + " 'extra arg'"}}, env_, "demo");
  ex.fire("on_start", "replica");
  // The script records "$@" with $1 = "extra arg": the file name has a space in it.
  ASSERT_TRUE(wait_file("argv_extra arg"));
  EXPECT_EQ(test::read_file(dir_.file("argv_extra arg")), "extra arg on_start replica demo\n");
}

TEST(CallbackEnvironment, DropsEveryPatroniVariable) {
  Environment env = {{"PATRONI_SCOPE", "s"}, {"PATRONI_admin_PASSWORD", "x"}, {"HOME", "/h"}, {"PGDATA", "/d"}};
  EXPECT_EQ(CallbackExecutor::callback_environment(env), (Environment{{"HOME", "/h"}, {"PGDATA", "/d"}}));
}

TEST_F(CallbacksTest, NewCallbackKillsTheRunningOne) {
  CallbackExecutor ex(all_actions(), env_, "demo");
  ex.fire("on_role_change", "master");
  ASSERT_TRUE(wait_file("pid_on_role_change"));
  int shell = read_pid(dir_.file("pid_on_role_change"));
  int sleeper = read_pid(dir_.file("sleep_pid"));
  ASSERT_GT(shell, 0);
  ASSERT_GT(sleeper, 0);
  EXPECT_TRUE(alive(shell));

  auto start = std::chrono::steady_clock::now();
  ex.fire("on_stop", "master");
  EXPECT_TRUE(test::wait_until([&] { return !alive(shell) && !alive(sleeper); }, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_TRUE(wait_file("argv_on_stop"));
  EXPECT_EQ(test::read_file(dir_.file("argv_on_stop")), "on_stop master demo\n");
}

TEST_F(CallbacksTest, OnReloadDoesNotKillTheMainSlot) {
  CallbackExecutor ex(all_actions(), env_, "demo");
  ex.fire("on_role_change", "replica");
  ASSERT_TRUE(wait_file("pid_on_role_change"));
  int shell = read_pid(dir_.file("pid_on_role_change"));
  ex.fire("on_reload", "replica");
  ASSERT_TRUE(wait_file("argv_on_reload"));
  EXPECT_EQ(test::read_file(dir_.file("argv_on_reload")), "on_reload replica demo\n");
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(alive(shell));
  ex.stop_all();
  EXPECT_FALSE(alive(shell));
}

TEST_F(CallbacksTest, LogsOutputAndExitStatus) {
  LogCapture logs;
  {
    CallbackExecutor ex(all_actions(), env_, "demo");
    ex.fire("on_restart", "master");
    EXPECT_TRUE(test::wait_until([&] { return logs.text().find("exited with code 3") != std::string::npos; }, 5s))
        << logs.text();
    ex.fire("on_start", "master");
    EXPECT_TRUE(test::wait_until([&] { return logs.text().find("callback on_start (pid") != std::string::npos &&
                                              logs.text().find("finished") != std::string::npos; }, 5s))
        << logs.text();
  }
  auto text = logs.text();
  EXPECT_NE(text.find("callback on_restart: hello from on_restart"), std::string::npos) << text;
  EXPECT_NE(text.find("callback on_start: hello from on_start"), std::string::npos) << text;
}

TEST_F(CallbacksTest, MissingProgramLogsAnError) {
  LogCapture logs;
  CallbackExecutor ex({{"on_start", dir_.file("no-such-script.sh") + " --x"}, {"on_stop", "'unterminated"}}, env_,
                      "demo");
  ex.fire("on_start", "master");
  ex.fire("on_stop", "master");
  ex.fire("on_restart", "master");  // not configured: nothing happens
  auto text = logs.text();
  EXPECT_NE(text.find("callback on_start: cannot start"), std::string::npos) << text;
  EXPECT_NE(text.find("unterminated quote"), std::string::npos) << text;
}

TEST_F(CallbacksTest, SetCommandsReplacesTheTable) {
  CallbackExecutor ex({}, env_, "demo");
  ex.fire("on_start", "master");
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(test::file_exists(dir_.file("argv_on_start")));
  ex.set_commands(all_actions());
  ex.fire("on_start", "master");
  EXPECT_TRUE(wait_file("argv_on_start"));
}

TEST_F(CallbacksTest, DestructorReturnsPromptly) {
  auto start = std::chrono::steady_clock::now();
  {
    CallbackExecutor ex(all_actions(), env_, "demo");
    ex.fire("on_start", "master");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace pgwarden::util
