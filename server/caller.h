// The identity of a public API call (see auth.h): its tenant and whether it is an admin.
#ifndef DREAMBOOTH_SERVER_CALLER_H_
#define DREAMBOOTH_SERVER_CALLER_H_

#include <string>

namespace dreambooth::server {

struct Caller {
  std::string tenant;  // what the caller creates belongs to this tenant
  bool admin = false;  // sees and acts on every tenant's resources

  // True when a resource of tenant `owner` exists for this caller (NOT_FOUND otherwise, with the
  // message of a missing id).
  bool CanSee(const std::string& owner) const { return admin || owner == tenant; }
  // The tenant filter of List calls: "" (every tenant) for admins.
  std::string ListFilter() const { return admin ? std::string() : tenant; }
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_CALLER_H_
