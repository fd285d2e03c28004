#include "pgwarden/dcs/cluster.hpp"

#include <algorithm>

namespace pgwarden::dcs {

bool Member::nofailover() const {
  auto it = data.find("tags");
  if (it == data.end() || !it->is_object()) return false;
  auto nf = it->find("nofailover");
  if (nf == it->end()) return false;
  if (nf->is_boolean()) return nf->get<bool>();
  if (nf->is_string()) return nf->get<std::string>() == "true";
  return false;
}

const Member* Cluster::member(const std::string& name) const {
  auto it = std::find_if(members.begin(), members.end(), [&](const Member& m) { return m.name == name; });
  return it == members.end() ? nullptr : &*it;
}

bool Cluster::is_paused() const {
  if (!config || !config->is_object()) return false;
  auto it = config->find("pause");
  return it != config->end() && it->is_boolean() && it->get<bool>();
}

Cluster& SharedCluster::edit() {
  if (!p_ || !owned_ || p_.use_count() > 1) {
    p_ = std::make_shared<Cluster>(p_ ? *p_ : Cluster{});
    owned_ = true;
  }
  // Made here as a non-const Cluster (owned_), and nobody else holds it.
  return const_cast<Cluster&>(*p_);
}

std::shared_ptr<const Cluster> SharedCluster::share() const {
  return p_ ? p_ : std::make_shared<const Cluster>();
}

const Cluster& SharedCluster::empty() {
  static const Cluster none;
  return none;
}

}  // namespace pgwarden::dcs
