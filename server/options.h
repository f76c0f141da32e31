// dreamboothd's configuration (flags map 1:1 onto these fields).
#ifndef DREAMBOOTH_SERVER_OPTIONS_H_
#define DREAMBOOTH_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dreambooth::server {

struct ServerOptions {
  // host:port of the public API; port 0 picks a free port (see Server::port()).
  std::string listen = "127.0.0.1:50051";
  // host:port of the worker service (WorkerGateway), never served on the public port; port 0
  // picks a free one (Server::worker_port()).
  std::string worker_listen = "127.0.0.1:50052";
  // PEM certificate chain and private key: both listeners serve TLS when set.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Serve plaintext on a non-loopback address (otherwise refused at startup).
  bool allow_insecure = false;
  // "api-keys": every call needs an API key (bearer token); "none": no credentials, allowed
  // only when both listeners are loopback; "auto": "none" on loopback-only, else "api-keys".
  std::string auth = "auto";
  // Holds db.sqlite and blobs/. Created when missing.
  std::string data_dir = "./dreambooth-data";
  // Lease time-to-live; workers heartbeat every ttl/3.
  int64_t lease_ttl_ms = 30'000;
  // How often expired leases are swept.
  int64_t sweep_interval_ms = 1'000;
  // A Sample call whose task no worker leases within this time fails with UNAVAILABLE (checked
  // every sweep_interval_ms).
  int64_t sample_queue_timeout_ms = 60'000;
  // Workers' progress events are written at most once per this interval per job.
  int64_t progress_interval_ms = 1'000;
  // Per uploaded file.
  int64_t max_upload_bytes = 50LL << 20;
  int64_t max_image_pixels = 40'000'000;
  int max_images_per_set = 1000;
  // Per-tenant quotas (RESOURCE_EXHAUSTED naming the flag): QUEUED + RUNNING jobs at CreateJob;
  // RUNNING jobs at once (a tenant's further jobs wait in the queue; 0: no limit).
  int tenant_max_active_jobs = 1000;
  int tenant_max_running_jobs = 0;
  // Bytes a tenant may store (its images and checkpoints): uploads and new jobs beyond it are
  // RESOURCE_EXHAUSTED (0: no limit).
  int64_t tenant_max_stored_bytes = 1LL << 40;
  // Threads that decode and store uploaded images (at most this many at once, off gRPC's
  // callback threads).
  int upload_decode_threads = 2;
  // UploadImages calls a tenant may start per minute (0: no limit).
  int tenant_uploads_per_minute = 120;
  // Events a worker may add to one job; beyond it they are dropped (progress still updates the
  // job). 0: no limit.
  int64_t max_events_per_job = 100'000;
  // LeaseTask long-polls parked at once per peer host (0: no limit).
  int max_parked_leases_per_peer = 64;
  // Per blob a worker writes (a checkpoint file, a cache item): RESOURCE_EXHAUSTED beyond it.
  int64_t max_blob_bytes = 64LL << 30;
  // A worker counts as registered (for CreateJob's "could any worker run this job" check) this
  // long after its last LeaseTask.
  int64_t worker_registration_ttl_ms = 24LL * 3600 * 1000;
  // A multi-node job's ranks wait this long at the rendezvous for the other nodes to lease it;
  // then node 0 gives the attempt back (GangAssignment.formation_timeout_ms).
  int64_t gang_formation_timeout_ms = 10LL * 60 * 1000;
  // host:port of the Prometheus metrics endpoint (/metrics, plain HTTP, no credentials); "" =>
  // none; port 0 picks a free one (Server::metrics_port()).
  std::string metrics_listen;
  // Log one line per RPC on either listener (method, code, duration, peer) at info level.
  bool access_log = false;
  // Readiness (grpc.health.v1 service "readiness") needs this much free space in the data dir.
  int64_t readiness_min_free_bytes = int64_t{1} << 30;
  // CreateJob request ids are remembered at least this long.
  int64_t request_retention_ms = 7LL * 24 * 3600 * 1000;
  // Retention (ServiceCore::RunMaintenance): how often it runs (0: never; the flag is positive),
  // how long a written blob is safe from the collector before something references it, and how long
  // the events of an ended job are kept (then only its last one).
  int64_t gc_interval_ms = 3600LL * 1000;
  int64_t gc_grace_ms = 3600LL * 1000;
  int64_t event_retention_ms = 30LL * 24 * 3600 * 1000;
  // Optional folder of diffusers model folders; each subfolder name is a known base model.
  std::string model_root;
  // Largest accepted gRPC message. Upload and blob chunks are at most 1 MiB; the cap is above
  // gRPC's 4 MiB default so that a worker can relay a large sample PNG (a 2048x2048 image) in
  // one ReportSampleOutput call.
  int max_message_bytes = 16 << 20;
  // Webhooks (docs/webhooks.md): the URL prefixes a job's webhook must start with (empty => any
  // http:// or https:// URL), attempts per delivery, the delay before the first retry (doubling
  // each time, at most 1 h), one POST's timeout, and how many POSTs run at once.
  std::vector<std::string> webhook_allowed_url_prefixes;
  int webhook_max_attempts = 8;
  int64_t webhook_initial_backoff_ms = 10'000;
  int64_t webhook_timeout_ms = 10'000;
  int webhook_concurrency = 4;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_OPTIONS_H_
