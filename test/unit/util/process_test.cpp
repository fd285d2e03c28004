// util::shell_split and util::run.
#include <gtest/gtest.h>

#include <chrono>

#include "pgwarden/util/process.hpp"

namespace pgwarden::util {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

struct SplitCase {
  std::string line;
  Strings want;
};

void PrintTo(const SplitCase& c, std::ostream* os) { *os << "line [" << c.line << "]"; }

class ShellSplit : public ::testing::TestWithParam<SplitCase> {};

TEST_P(ShellSplit, SplitsLikeShlex) {
  auto r = shell_split(GetParam().line);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(*r, GetParam().want) << GetParam().line;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ShellSplit,
    ::testing::Values(SplitCase{"a b  c", {"a", "b", "c"}},
                      SplitCase{"  leading and trailing  ", {"leading", "and", "trailing"}},
                      SplitCase{"", {}},
                      SplitCase{"cmd 'single quoted arg'", {"cmd", "single quoted arg"}},
                      SplitCase{"cmd \"double quoted arg\"", {"cmd", "double quoted arg"}},
                      SplitCase{"cmd a\\ b", {"cmd", "a b"}},
                      SplitCase{"cmd \"a\\\"b\"", {"cmd", "a\"b"}},
                      SplitCase{"/x.sh %f \"%p\"", {"/x.sh", "%f", "%p"}},
                      SplitCase{"a\tb\nc", {"a", "b", "c"}},
                      SplitCase{"/etc/script.sh --encoding=UTF8\n", {"/etc/script.sh", "--encoding=UTF8"}},
                      SplitCase{"pre'fix'post", {"prefixpost"}},
                      SplitCase{"cmd '' x", {"cmd", "", "x"}},
                      SplitCase{"cmd 'a\\b'", {"cmd", "a\\b"}}));

// shlex keeps a quote of the other kind inside a quoted word (Boost's split_unix did not).
TEST(ShellSplitQuotes, OtherQuoteInsideQuotesIsKept) {
  auto a = shell_split("cmd \"it's\"");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (Strings{"cmd", "it's"}));
  auto b = shell_split("cmd 'say \"hi\"'");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (Strings{"cmd", "say \"hi\""}));
}

TEST(ShellSplitErrors, UnterminatedQuote) {
  for (const char* line : {"cmd 'open", "cmd \"open", "'"}) {
    auto r = shell_split(line);
    EXPECT_FALSE(r) << line;
    EXPECT_EQ(r.status().code(), Code::kInvalid);
  }
}

Command sh(const std::string& script) { return Command{{"/bin/sh", "-c", script}, current_environment(), std::nullopt}; }

TEST(Run, ExitCodeAndOutput) {
  auto r = run(sh("echo out; echo err >&2; exit 3"), 10s);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->output.find("out\n"), std::string::npos);
  EXPECT_NE(r->output.find("err\n"), std::string::npos);
}

TEST(Run, SuccessAndEnvironment) {
  Command cmd{{"sh", "-c", "echo \"$FOO\""}, {{"PATH", "/usr/bin:/bin"}, {"FOO", "bar baz"}}, std::nullopt};
  auto r = run(cmd, 10s);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "bar baz\n");
}

TEST(Run, TimeoutKillsTheProcessGroup) {
  auto start = std::chrono::steady_clock::now();
  auto r = run(sh("sleep 30 & sleep 30; echo never"), 300ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->output.find("never"), std::string::npos);
  EXPECT_LT(elapsed, 5s);
}

TEST(Run, MissingProgramIsAStatus) {
  Command cmd{{"pgwarden-no-such-program"}, {{"PATH", "/usr/bin:/bin"}}, std::nullopt};
  auto r = run(cmd, 1s);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(Environment, WithoutPrefixes) {
  Environment env = {{"PATRONI_X", "1"}, {"PATRONICTL_CONFIG_FILE", "2"}, {"HOME", "/h"}, {"XPATRONI_Y", "3"}};
  auto out = without_prefixes(env, {"PATRONI_"});
  EXPECT_EQ(out, (Environment{{"PATRONICTL_CONFIG_FILE", "2"}, {"HOME", "/h"}, {"XPATRONI_Y", "3"}}));
}

}  // namespace
}  // namespace pgwarden::util
