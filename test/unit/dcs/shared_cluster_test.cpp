// SharedCluster: readers share one cluster without copying it, and a change through edit()
// never shows through another holder (copy on write).
#include <gtest/gtest.h>

#include "pgwarden/dcs/cluster.hpp"

namespace pgwarden::dcs {
namespace {

Cluster led_by(const std::string& name) {
  Cluster c;
  c.leader = Leader{name, 1, "7"};
  c.members.push_back(Member{name, 1, "7", {{"role", "master"}}});
  return c;
}

TEST(SharedCluster, CopiesShareOneValue) {
  SharedCluster a = led_by("n1");
  SharedCluster b = a;
  EXPECT_EQ(&*a, &*b) << "a copy is the same cluster, not a copy of it";
  auto reader = a.share();
  EXPECT_EQ(reader.get(), &*a);
}

TEST(SharedCluster, EditNeverChangesWhatOthersHold) {
  SharedCluster a = led_by("n1");
  auto reader = a.share();  // e.g. the REST view
  SharedCluster b = a;
  a.edit().leader = Leader{"n2", 2, "8"};
  EXPECT_EQ(a->leader->name, "n2");
  EXPECT_EQ(b->leader->name, "n1");
  EXPECT_EQ(reader->leader->name, "n1");
  // Once a holds a value of its own, further edits change it in place.
  const Cluster* own = &*a;
  a.edit().last_lsn = 42;
  EXPECT_EQ(&*a, own);
  EXPECT_EQ(a->last_lsn, 42);
}

TEST(SharedCluster, AViewFromElsewhereIsCopiedBeforeItChanges) {
  auto cache = std::make_shared<const Cluster>(led_by("n1"));  // e.g. the etcd view
  SharedCluster s(cache);
  EXPECT_EQ(&*s, cache.get());
  s.edit().leader.reset();
  EXPECT_FALSE(s->leader);
  EXPECT_TRUE(cache->leader) << "the cache's cluster is as etcd said";
}

TEST(SharedCluster, EmptyUntilSetAndEditable) {
  SharedCluster none;
  EXPECT_FALSE(none->leader);
  EXPECT_TRUE(none->members.empty());
  EXPECT_TRUE(none.share()->members.empty());
  none.edit().members.push_back(Member{"n3", 0, "", nlohmann::json::object()});
  EXPECT_EQ(none->members.size(), 1u);
  SharedCluster other;
  EXPECT_TRUE(other->members.empty()) << "the empty value is not shared by edits";
}

}  // namespace
}  // namespace pgwarden::dcs
