// Moving checkpoints between a worker's local folders and the server: upload every file of a
// folder with WriteBlob and record them with CommitCheckpoint (under the lease token), and
// download a committed checkpoint's files into a local folder.
#ifndef DREAMBOOTH_WORKER_CHECKPOINT_TRANSFER_H_
#define DREAMBOOTH_WORKER_CHECKPOINT_TRANSFER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dreambooth/v1/resources.pb.h"
#include "worker/gateway_client.h"

namespace dreambooth::worker {

// Uploads every regular file below `dir` (paths relative to it, '/'-separated; hidden staging
// files skipped) and commits them as a checkpoint of `kind` taken after `step`. Returns the
// checkpoint id. Blobs already on the server are deduplicated there.
absl::StatusOr<std::string> UploadCheckpoint(GatewayClient& client, const std::string& lease_token,
                                             const std::string& dir, int64_t step,
                                             v1::CheckpointKind kind);

// Downloads `checkpoint`'s files into `dir` (created) unless `dir` already holds a complete,
// verified copy (a marker file records the manifest digest). Each file's digest is verified.
// `lease_token`'s task must be allowed to read the files.
absl::Status DownloadCheckpoint(GatewayClient& client, const std::string& lease_token,
                                const v1::Checkpoint& checkpoint, const std::string& dir);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_CHECKPOINT_TRANSFER_H_
