#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dreambooth::server {
namespace {

// A training job whose last progress is older than this no longer counts toward throughput.
constexpr int64_t kProgressStaleMs = 60'000;

prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddGauge(prometheus::MetricFamily* family, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family->metric.push_back(std::move(metric));
}

}  // namespace

const char* RpcCodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

class Metrics::Families {
 public:
  explicit Families(prometheus::Registry& registry)
      : rpc(prometheus::BuildHistogram()
                .Name("dreambooth_rpc_duration_seconds")
                .Help("gRPC calls served, by method and status code, and how long they took")
                .Register(registry)),
        queue_wait(prometheus::BuildHistogram()
                       .Name("dreambooth_job_queue_wait_seconds")
                       .Help("Time from a job's creation to its first lease")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 60, 300, 1800, 3600,
                                                                        6 * 3600, 24 * 3600})),
        job_duration(prometheus::BuildHistogram()
                         .Name("dreambooth_job_duration_seconds")
                         .Help("Time from a job's first lease to its end, by outcome")
                         .Register(registry)),
        training_steps(prometheus::BuildCounter()
                           .Name("dreambooth_training_steps_total")
                           .Help("Optimizer steps the workers reported training (rate() gives "
                                 "steps per second)")
                           .Register(registry)
                           .Add({})),
        upload_bytes(prometheus::BuildCounter()
                         .Name("dreambooth_upload_bytes_total")
                         .Help("Image bytes received by UploadImages (duplicates included)")
                         .Register(registry)
                         .Add({})),
        webhook_attempts(prometheus::BuildCounter()
                             .Name("dreambooth_webhook_attempts_total")
                             .Help("Webhook POSTs, by outcome: delivered (2xx), retry (will be "
                                   "retried), failed (the delivery's last attempt)")
                             .Register(registry)) {}

  prometheus::Family<prometheus::Histogram>& rpc;
  prometheus::Histogram& queue_wait;
  prometheus::Family<prometheus::Histogram>& job_duration;
  prometheus::Counter& training_steps;
  prometheus::Counter& upload_bytes;
  prometheus::Family<prometheus::Counter>& webhook_attempts;
};

// The gauges read at scrape time.
class Metrics::StateCollectable : public prometheus::Collectable {
 public:
  StateCollectable(std::function<absl::StatusOr<Snapshot>()> snapshot, Metrics* owner)
      : snapshot_(std::move(snapshot)), owner_(owner) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    absl::StatusOr<Snapshot> s = snapshot_();
    prometheus::MetricFamily up = GaugeFamily("dreambooth_metrics_snapshot_ok",
                                              "1 when the database could be read for this scrape");
    AddGauge(&up, s.ok() ? 1 : 0);
    out.push_back(std::move(up));
    if (s.ok()) {
      prometheus::MetricFamily jobs = GaugeFamily("dreambooth_jobs", "Jobs by state");
      for (const auto& [state, n] : s->jobs_by_state) {
        AddGauge(&jobs, static_cast<double>(n), {{"state", state}});
      }
      out.push_back(std::move(jobs));
      prometheus::MetricFamily workers = GaugeFamily(
          "dreambooth_workers", "Workers that asked for work within --worker-registration-ttl");
      AddGauge(&workers, static_cast<double>(s->workers));
      out.push_back(std::move(workers));
      prometheus::MetricFamily leases =
          GaugeFamily("dreambooth_leases", "TRAIN leases held by workers (RUNNING jobs)");
      AddGauge(&leases, static_cast<double>(s->leases));
      out.push_back(std::move(leases));
      prometheus::MetricFamily bytes =
          GaugeFamily("dreambooth_blob_store_bytes", "Bytes stored in the blob store");
      AddGauge(&bytes, static_cast<double>(s->blob_bytes));
      out.push_back(std::move(bytes));
      prometheus::MetricFamily blobs =
          GaugeFamily("dreambooth_blob_store_blobs", "Blobs stored in the blob store");
      AddGauge(&blobs, static_cast<double>(s->blobs));
      out.push_back(std::move(blobs));
    }
    prometheus::MetricFamily ips = GaugeFamily(
        "dreambooth_training_images_per_second",
        "Sum of the training throughput the workers last reported (jobs reporting in the last "
        "minute)");
    AddGauge(&ips, owner_->ImagesPerSecond());
    out.push_back(std::move(ips));
    return out;
  }

 private:
  std::function<absl::StatusOr<Snapshot>()> snapshot_;
  Metrics* owner_;
};

Metrics::Metrics(std::function<absl::StatusOr<Snapshot>()> snapshot)
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_)),
      state_(std::make_shared<StateCollectable>(std::move(snapshot), this)) {}

Metrics::~Metrics() { exposer_.reset(); }

absl::StatusOr<int> Metrics::Serve(const std::string& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on --metrics-listen ", listen, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(state_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("the metrics listener has no port");
  return ports.front();
}

void Metrics::ObserveRpc(absl::string_view method, int code, double seconds) {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};
  families_->rpc.Add({{"method", std::string(method)}, {"code", RpcCodeName(code)}}, *kBuckets)
      .Observe(seconds);
}

void Metrics::ObserveQueueWait(double seconds) { families_->queue_wait.Observe(seconds); }

void Metrics::ObserveJobEnd(const std::string& outcome, double seconds) {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      10, 60, 300, 900, 3600, 3 * 3600, 12 * 3600, 48 * 3600};
  families_->job_duration.Add({{"outcome", outcome}}, *kBuckets).Observe(seconds);
}

void Metrics::ObserveTrainingProgress(const std::string& job_id, int64_t step,
                                      double images_per_second, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  Progress& p = progress_[job_id];
  if (step > p.step) families_->training_steps.Increment(static_cast<double>(step - p.step));
  p.step = std::max(p.step, step);
  p.images_per_second = images_per_second;
  p.time_ms = now_ms;
  // Forget jobs that stopped reporting long ago, so the map stays small.
  for (auto it = progress_.begin(); it != progress_.end();) {
    it = now_ms - it->second.time_ms > 10 * kProgressStaleMs ? progress_.erase(it) : std::next(it);
  }
}

double Metrics::ImagesPerSecond() {
  const int64_t now = absl::ToUnixMillis(absl::Now());
  absl::MutexLock lock(&mu_);
  double sum = 0;
  for (const auto& [id, p] : progress_) {
    if (now - p.time_ms <= kProgressStaleMs) sum += p.images_per_second;
  }
  return sum;
}

void Metrics::ObserveWebhookAttempt(const std::string& outcome) {
  families_->webhook_attempts.Add({{"outcome", outcome}}).Increment();
}

void Metrics::AddUploadBytes(int64_t bytes) {
  families_->upload_bytes.Increment(static_cast<double>(bytes));
}

std::string Metrics::Text() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<prometheus::MetricFamily> state = state_->Collect();
  families.insert(families.end(), state.begin(), state.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace dreambooth::server
