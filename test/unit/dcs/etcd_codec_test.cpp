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

// Plain messages, one with escapes (not plain), garbage and a bad object between them: cut into
// two reads at every position, the stream hands out the same documents in the same order.
TEST(EtcdCodec, JsonObjectStreamGivesTheSameObjectsWhereverAReadEnds) {
  const std::string stream =
      R"({"result":{"header":{"revision":"105"},"events":[{"kv":{"key":"L2E=","mod_revision":"105"}}]}})"
      "\n"
      R"( {"result":{"x":"quote \" and \\ inside","n":[1,2.5,-3,true,null]}} junk )"
      R"({"bad": } {"result":{"canceled":true}}{"last":{}})";
  const std::vector<nlohmann::json> want = {
      nlohmann::json::parse(R"({"result":{"header":{"revision":"105"},"events":[{"kv":{"key":"L2E=","mod_revision":"105"}}]}})"),
      nlohmann::json::parse(R"({"result":{"x":"quote \" and \\ inside","n":[1,2.5,-3,true,null]}})"),
      nlohmann::json::parse(R"({"result":{"canceled":true}})"),
      nlohmann::json::parse(R"({"last":{}})"),
  };
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonObjectStream s;
    auto got = s.feed(stream.substr(0, cut));
    auto rest = s.feed(stream.substr(cut));
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got.size(), want.size()) << "cut at " << cut;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i], want[i]) << "cut at " << cut << ", object " << i;
      EXPECT_EQ(got[i].dump(), want[i].dump()) << "cut at " << cut << ", object " << i;
    }
    EXPECT_TRUE(s.feed("").empty()) << "nothing left over after a cut at " << cut;
  }
}

TEST(EtcdCodec, FirstJsonObjectOfStreamedReply) {
  auto j = first_json_object("{\"result\":{\"TTL\":\"5\"}}\n");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(json_int64(j["result"], "TTL"), 5);
  EXPECT_TRUE(first_json_object("not json").is_discarded());
}

// etcd 3.4's gateway answers, as received (the keep-alive is a streamed RPC).
struct KeepAliveCase {
  const char* name;
  const char* body;
  std::optional<KeepAliveAnswer> want;  // nullopt: the general path must read it
};

TEST(EtcdCodec, KeepAliveAnswerReadWithoutADocument) {
  const std::vector<KeepAliveCase> cases = {
      {"renewed",
       R"({"result":{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"17","raft_term":"3"},"ID":"7587899398883950852","TTL":"10"}})"
       "\n",
       KeepAliveAnswer{10, 17}},
      {"expired (no TTL)",
       R"({"result":{"header":{"cluster_id":"1","member_id":"2","revision":"9","raft_term":"3"},"ID":"12345"}})",
       KeepAliveAnswer{0, 9}},
      {"numbers instead of strings", R"({"result":{"header":{"revision":5},"TTL":30}})", KeepAliveAnswer{30, 5}},
      {"no header", R"({"result":{"ID":"1","TTL":"4"}})", KeepAliveAnswer{4, 0}},
      {"second object ignored", R"({"result":{"TTL":"4"}}{"result":{"TTL":"8"}})", KeepAliveAnswer{4, 0}},
      {"nested TTL is not the lease's", R"({"result":{"header":{"TTL":"99"},"TTL":"3"}})", KeepAliveAnswer{3, 0}},
      {"error object", R"({"error":{"grpc_code":5,"http_code":404,"message":"etcdserver: requested lease not found"}})",
       std::nullopt},
      {"unary error", R"({"error":"invalid character","message":"invalid character","code":2})", std::nullopt},
      {"no result", R"({"header":{"revision":"3"}})", std::nullopt},
      {"TTL not a number", R"({"result":{"TTL":"ten"}})", std::nullopt},
      {"TTL of the wrong type", R"({"result":{"TTL":true}})", std::nullopt},
      {"truncated", R"({"result":{"TTL":"10")", std::nullopt},
      {"not JSON", "<html>bad gateway</html>", std::nullopt},
      {"empty", "", std::nullopt},
      {"array", R"([{"result":{"TTL":"10"}}])", std::nullopt},
      // Beyond the gateway's usual shape (read by nlohmann's SAX instead): the same answers.
      {"spaced out", " {\n \"result\" : { \"header\" : { \"revision\" : \"8\" } , \"TTL\" : \"6\" } }\r\n",
       KeepAliveAnswer{6, 8}},
      {"escape in another string", R"({"result":{"header":{"member_id":"a\"b","revision":"7"},"TTL":"5"}})",
       KeepAliveAnswer{5, 7}},
      {"escaped key", R"({"result":{"T\u0054L":"12"}})", KeepAliveAnswer{12, 0}},
      {"literals and arrays elsewhere", R"({"result":{"header":{"ok":true,"x":null,"l":[1,2],"revision":"4"},"TTL":"3"}})",
       KeepAliveAnswer{3, 4}},
      {"float elsewhere", R"({"result":{"header":{"f":1.5,"revision":"2"},"TTL":"9"}})", KeepAliveAnswer{9, 2}},
      {"negative TTL", R"({"result":{"TTL":"-1"}})", KeepAliveAnswer{-1, 0}},
      {"duplicate TTL: the last one", R"({"result":{"TTL":"1","TTL":"2"}})", KeepAliveAnswer{2, 0}},
      {"TTL as a float", R"({"result":{"TTL":10.5}})", std::nullopt},
      {"TTL with an exponent", R"({"result":{"TTL":1e3}})", std::nullopt},
      {"TTL with a leading zero", R"({"result":{"TTL":010}})", std::nullopt},
      {"TTL too large", R"({"result":{"TTL":"99999999999999999999"}})", std::nullopt},
      {"TTL with a plus", R"({"result":{"TTL":"+10"}})", std::nullopt},
      {"control character in a string", "{\"result\":{\"ID\":\"a\tb\",\"TTL\":\"10\"}}", std::nullopt},
      {"UTF-8 elsewhere", "{\"result\":{\"ID\":\"caf\xc3\xa9\",\"TTL\":\"10\"}}", KeepAliveAnswer{10, 0}},
      {"invalid UTF-8 elsewhere", "{\"result\":{\"ID\":\"a\xff\",\"TTL\":\"10\"}}", std::nullopt},
      {"missing comma", R"({"result":{"ID":"1" "TTL":"10"}})", std::nullopt},
      {"error after result", R"({"result":{"TTL":"10"},"error":{"message":"x"}})", std::nullopt},
      {"deeply nested elsewhere", R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}},"result":{"TTL":"2"}})",
       KeepAliveAnswer{2, 0}},
  };
  for (const auto& c : cases) {
    auto got = read_keepalive_answer(c.body);
    ASSERT_EQ(got.has_value(), c.want.has_value()) << c.name;
    if (!got) continue;
    EXPECT_EQ(got->ttl, c.want->ttl) << c.name;
    EXPECT_EQ(got->revision, c.want->revision) << c.name;
  }
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
