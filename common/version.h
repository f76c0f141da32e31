// The version of the service (dreamboothd, dreambooth-worker, dbtool), recorded in what training
// writes (checkpoint metadata, model cards). The C++ SDK and dbctl have their own semantic version
// (client/version.h).
#ifndef DREAMBOOTH_COMMON_VERSION_H_
#define DREAMBOOTH_COMMON_VERSION_H_

namespace dreambooth {

inline constexpr char kServiceVersion[] = "0.11.0";

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_VERSION_H_
