// The project's version, recorded in the artefacts it writes (checkpoint metadata, model cards)
// and printed by --version.
#ifndef DREAMBOOTH_COMMON_VERSION_H_
#define DREAMBOOTH_COMMON_VERSION_H_

namespace dreambooth {

inline constexpr char kVersion[] = "0.11.0";

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_VERSION_H_
