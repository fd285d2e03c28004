// NodeBoard: what readers see while the loop is busy with a long action.
#include <gtest/gtest.h>

#include "pgwarden/ha/node_view.hpp"

namespace pgwarden::ha {
namespace {

TEST(NodeBoard, HeartbeatRefreshesStateAndNextRunOnly) {
  NodeBoard board;
  NodeView v;
  v.name = "node1";
  v.state = "stopped";
  v.role = "replica";
  v.next_scheduled_run = 100;
  v.last_decision = "cloning";
  board.publish(v);

  board.heartbeat("creating replica", 250);
  NodeView seen = board.read();
  EXPECT_EQ(seen.state, "creating replica");
  EXPECT_EQ(seen.next_scheduled_run, 250);
  EXPECT_EQ(seen.name, "node1");
  EXPECT_EQ(seen.role, "replica");
  EXPECT_EQ(seen.last_decision, "cloning");

  // No state known yet: the last one stays, the loop is still reported alive.
  board.heartbeat("", 260);
  seen = board.read();
  EXPECT_EQ(seen.state, "creating replica");
  EXPECT_EQ(seen.next_scheduled_run, 260);

  // The next full view replaces everything.
  board.publish(v);
  EXPECT_EQ(board.read().state, "stopped");
  EXPECT_EQ(board.read().next_scheduled_run, 100);
}

TEST(NodeBoard, UpdateChangesOnlyWhatItAssigns) {
  NodeBoard board;
  NodeView v;
  v.name = "node1";
  v.role = "replica";
  v.api_url = "http://127.0.0.1:8008/patroni";
  v.next_scheduled_run = 100;
  board.publish(v);

  // The next cycle assigns in place: what it sets changes, the rest stays as published.
  board.update([](NodeView& view) {
    view.role = "master";
    view.is_leader = true;
    view.next_scheduled_run = 102;
  });
  NodeView seen = board.read();
  EXPECT_EQ(seen.role, "master");
  EXPECT_TRUE(seen.is_leader);
  EXPECT_EQ(seen.next_scheduled_run, 102);
  EXPECT_EQ(seen.name, "node1");
  EXPECT_EQ(seen.api_url, "http://127.0.0.1:8008/patroni");

  // A copy read before an update is the reader's own: later updates do not reach it.
  board.update([](NodeView& view) { view.role = "demoted"; });
  EXPECT_EQ(seen.role, "master");
  EXPECT_EQ(board.read().role, "demoted");
}

}  // namespace
}  // namespace pgwarden::ha
