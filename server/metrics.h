// The daemon's Prometheus metrics (docs/operations.md#metrics), served in the text format at
// http://<dreamboothd --metrics-listen>/metrics. Counters and histograms are fed by the service as
// things happen (RPCs, job ends, leases, uploads, the workers' training progress); the gauges of
// the queue, the workers and the blob store are read from the database at each scrape.
// Thread-safe.
#ifndef DREAMBOOTH_SERVER_METRICS_H_
#define DREAMBOOTH_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace dreambooth::server {

// The canonical name of a gRPC status code ("OK", "NOT_FOUND", ...).
const char* RpcCodeName(int code);

class Metrics {
 public:
  // What a scrape reads at that moment.
  struct Snapshot {
    std::map<std::string, int64_t> jobs_by_state;  // "queued", "running", ... (all five)
    int64_t workers = 0;                           // registered within --worker-registration-ttl
    int64_t leases = 0;                            // TRAIN leases held (RUNNING jobs)
    int64_t blob_bytes = 0;                        // bytes in the blob store
    int64_t blobs = 0;
  };

  explicit Metrics(std::function<absl::StatusOr<Snapshot>()> snapshot);
  ~Metrics();

  // Serves /metrics on `listen` ("host:port"; port 0 => a free one). Returns the port.
  absl::StatusOr<int> Serve(const std::string& listen);

  // `method` is the full gRPC method ("/dreambooth.v1.DreamBooth/GetJob"); `code` its status.
  void ObserveRpc(absl::string_view method, int code, double seconds);
  // A job's first lease, `seconds` after it was created.
  void ObserveQueueWait(double seconds);
  // A job reached `outcome` ("succeeded", "failed", "cancelled") after running `seconds` (0 when
  // it never ran).
  void ObserveJobEnd(const std::string& outcome, double seconds);
  // A TRAINING progress report of a job at now_ms (Unix ms): its step and throughput.
  void ObserveTrainingProgress(const std::string& job_id, int64_t step, double images_per_second,
                               int64_t now_ms);
  void AddUploadBytes(int64_t bytes);
  // A webhook POST ended: "delivered", "retry" or "failed".
  void ObserveWebhookAttempt(const std::string& outcome);

  // The exposition text a scrape gets.
  std::string Text() const;
  // Sum of the throughput of the jobs that reported within the last minute.
  double ImagesPerSecond();

 private:
  class Families;
  class StateCollectable;

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  std::shared_ptr<StateCollectable> state_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  absl::Mutex mu_;
  struct Progress {
    int64_t step = 0;
    double images_per_second = 0;
    int64_t time_ms = 0;
  };
  std::map<std::string, Progress> progress_ ABSL_GUARDED_BY(mu_);  // by job id
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_METRICS_H_
