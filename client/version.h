// The version of the C++ SDK and dbctl (semantic versioning; the CMake package
// DreamBoothClient reads it from this line). The wire API they speak is dreambooth.v1.
#ifndef DREAMBOOTH_CLIENT_VERSION_H_
#define DREAMBOOTH_CLIENT_VERSION_H_

namespace dreambooth::client {

inline constexpr char kVersion[] = "0.2.0";
inline constexpr char kApiVersion[] = "dreambooth.v1";

}  // namespace dreambooth::client

#endif  // DREAMBOOTH_CLIENT_VERSION_H_
