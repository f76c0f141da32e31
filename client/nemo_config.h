// Maps an NVIDIA NeMo DreamBooth config (the YAML of NeMo's examples/multimodal/text_to_image/
// dreambooth/conf/dreambooth.yaml: model.*, model.data.*, model.optim.*, trainer.*,
// exp_manager.*, infer.*) onto a JobSpec, for `dbctl jobs submit --nemo-config`. Every leaf key
// of the YAML is either mapped onto a JobSpec field or reported as unmapped with a reason; the
// table of what maps where is in docs/api.md#nemo-configs. Pure functions; thread-safe.
#ifndef DREAMBOOTH_CLIENT_NEMO_CONFIG_H_
#define DREAMBOOTH_CLIENT_NEMO_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"

namespace dreambooth::client {

// A leaf key of the NeMo config that sets no JobSpec field.
struct NemoUnmappedKey {
  std::string key;  // dotted path, e.g. "model.text_embedding_dropout_rate"
  std::string
      reason;  // "no equivalent ...", "ignored: NeMo internal ...", "unsupported value X ..."
};

// The result of mapping one NeMo config.
struct NemoMapping {
  // Only the fields the config sets; everything else is left unset so that the server's
  // defaults (or dbctl's other flags) apply. base_model and instance_image_set are never set:
  // NeMo names checkpoint and image paths on its own host, not server resources.
  v1::JobSpec spec;
  // Every leaf key that set nothing, in the order of the file.
  std::vector<NemoUnmappedKey> unmapped;
};

// Maps the YAML text of a NeMo DreamBooth config. Whole-value interpolations "${a.b}" are
// resolved against the same file (chains included); any other interpolation leaves its key
// unmapped. INVALID_ARGUMENT when the text is not a YAML mapping, or when a mapped key holds a
// value of the wrong type or out of the JobSpec's range: the message names the NeMo key (and the
// JobSpec field, whose bounds are spec/job_spec_rules.h's).
absl::StatusOr<NemoMapping> MapNemoConfig(std::string_view yaml_text);

// Reads `path` and maps it as MapNemoConfig does; NOT_FOUND when it cannot be read. Messages
// start with the path.
absl::StatusOr<NemoMapping> LoadNemoConfig(const std::string& path);

}  // namespace dreambooth::client

#endif  // DREAMBOOTH_CLIENT_NEMO_CONFIG_H_
