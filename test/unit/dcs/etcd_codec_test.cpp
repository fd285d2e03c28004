#include <gtest/gtest.h>

#include "pgwarden/dcs/etcd/codec.hpp"
#include "pgwarden/dcs/etcd/etcd_client.hpp"

namespace pgwarden::dcs::etcd {
namespace {

TEST(EtcdCodec, Base64RoundTrip) {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("/service/batman/leader"), std::string("\0\xff\x01 binary", 10)}) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), back)) << s;
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(base64_encode("leader"), "bGVhZGVy");
  std::string out;
  EXPECT_TRUE(base64_decode("bGVhZGVy", out));
  EXPECT_EQ(out, "leader");
  EXPECT_FALSE(base64_decode("bGVh*GVy", out));
  EXPECT_FALSE(base64_decode("abc", out));  // not a multiple of 4
}

TEST(EtcdCodec, PrefixNormalisation) {
  EXPECT_EQ(cluster_prefix("/service/", "batman"), "/service/batman/");
  EXPECT_EQ(cluster_prefix("/service", "batman"), "/service/batman/");
  EXPECT_EQ(cluster_prefix("service", "batman"), "/service/batman/");
  EXPECT_EQ(cluster_prefix("//service//", "batman"), "/service/batman/");
  EXPECT_EQ(cluster_prefix("", "batman"), "/batman/");
  EXPECT_EQ(cluster_prefix("/", "batman"), "/batman/");
}

TEST(EtcdCodec, PrefixRangeEnd) {
  EXPECT_EQ(prefix_range_end("/service/batman/"), "/service/batman0");
  EXPECT_EQ(prefix_range_end("a\xff"), "b");
  EXPECT_EQ(prefix_range_end("\xff"), std::string(1, '\0'));
}

TEST(EtcdCodec, Int64FromStringOrNumber) {
  auto j = nlohmann::json::parse(R"({"a":"42","b":7,"c":"x","d":"-5"})");
  EXPECT_EQ(json_int64(j, "a"), 42);
  EXPECT_EQ(json_int64(j, "b"), 7);
  EXPECT_EQ(json_int64(j, "c", -1), -1);
  EXPECT_EQ(json_int64(j, "d"), -5);
  EXPECT_EQ(json_int64(j, "missing", 3), 3);
}

TEST(EtcdCodec, DecodeRangeResponse) {
  nlohmann::json resp = {
      {"header", {{"revision", "12"}}},
      {"kvs",
       {{{"key", base64_encode("/service/b/leader")},
         {"value", base64_encode("node1")},
         {"create_revision", "3"},
         {"mod_revision", "9"},
         {"lease", "7587862349001312"}},
        // empty value is omitted by the gateway
        {{"key", base64_encode("/service/b/initialize")}, {"mod_revision", "2"}},
        // undecodable key: skipped
        {{"key", "!!!"}, {"value", base64_encode("x")}}}},
      {"count", "3"}};
  auto kvs = decode_kvs(resp);
  ASSERT_EQ(kvs.size(), 2u);
  EXPECT_EQ(kvs[0].key, "/service/b/leader");
  EXPECT_EQ(kvs[0].value, "node1");
  EXPECT_EQ(kvs[0].create_revision, 3);
  EXPECT_EQ(kvs[0].mod_revision, 9);
  EXPECT_EQ(kvs[0].lease, 7587862349001312);
  EXPECT_EQ(kvs[1].key, "/service/b/initialize");
  EXPECT_EQ(kvs[1].value, "");
  EXPECT_EQ(kvs[1].lease, 0);
}

TEST(EtcdCodec, JsonObjectStreamSplitsConcatenatedAndPartialObjects) {
  JsonObjectStream s;
  auto a = s.feed(R"({"result":{"created":true}}{"result":{"events":[{"kv":{"key":"e30="}}]}})");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_TRUE(a[0]["result"]["created"].get<bool>());
  EXPECT_TRUE(a[1]["result"].contains("events"));
  // split across reads, with braces and quotes inside strings
  EXPECT_TRUE(s.feed("\n{\"a\":\"x}{\\\"").empty());
  auto b = s.feed("y\"}\n");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]["a"], "x}{\"y");
}

TEST(EtcdCodec, FirstJsonObjectOfStreamedReply) {
  auto j = first_json_object("{\"result\":{\"TTL\":\"5\"}}\n");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(json_int64(j["result"], "TTL"), 5);
  EXPECT_TRUE(first_json_object("not json").is_discarded());
}

TEST(EtcdCodec, TxnBuildersUseGatewayShapes) {
  auto c = EtcdClient::cmp_create_revision("/k", 0);
  EXPECT_EQ(c["target"], "CREATE");
  EXPECT_EQ(c["create_revision"], "0");
  EXPECT_EQ(c["key"], base64_encode("/k"));
  auto p = EtcdClient::op_put("/k", "v", 42);
  EXPECT_EQ(p["request_put"]["lease"], "42");
  EXPECT_EQ(p["request_put"]["value"], base64_encode("v"));
  EXPECT_FALSE(EtcdClient::op_put("/k", "v")["request_put"].contains("lease"));
}

}  // namespace
}  // namespace pgwarden::dcs::etcd
