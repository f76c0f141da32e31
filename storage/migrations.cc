#include "storage/migrations.h"

namespace dreambooth::storage {
namespace {

// Version 1: the initial schema. Times are Unix milliseconds; enums store the proto values.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL
);

CREATE TABLE image_sets (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL
);

CREATE TABLE images (
  set_id TEXT NOT NULL REFERENCES image_sets(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  format TEXT NOT NULL,
  PRIMARY KEY (set_id, digest)
);
CREATE INDEX images_by_position ON images(set_id, position);

CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  spec BLOB NOT NULL,
  base_model TEXT NOT NULL,
  instance_set TEXT NOT NULL,
  regularization_set TEXT NOT NULL,
  request_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  stage INTEGER NOT NULL DEFAULT 0,
  step INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER NOT NULL DEFAULT 0,
  create_time_ms INTEGER NOT NULL,
  start_time_ms INTEGER NOT NULL DEFAULT 0,
  end_time_ms INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL DEFAULT 0,
  error_attempts INTEGER NOT NULL DEFAULT 0,
  infra_attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  max_infra_attempts INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  lease_token TEXT,
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  worker_id TEXT NOT NULL DEFAULT '',
  last_sequence INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_queue ON jobs(state, seq);
CREATE UNIQUE INDEX jobs_lease ON jobs(lease_token) WHERE lease_token IS NOT NULL;
CREATE INDEX jobs_by_set ON jobs(instance_set);

CREATE TABLE request_ids (
  request_id TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  job_id TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL
);
CREATE INDEX request_ids_by_time ON request_ids(create_time_ms);

CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  step INTEGER NOT NULL,
  total INTEGER NOT NULL,
  loss REAL NOT NULL,
  learning_rate REAL NOT NULL,
  images_per_second REAL NOT NULL,
  eta_seconds REAL NOT NULL,
  message TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL UNIQUE,
  step INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  create_time_ms INTEGER NOT NULL,
  manifest_digest TEXT NOT NULL
);
CREATE INDEX checkpoints_by_job ON checkpoints(job_id, seq);

CREATE TABLE checkpoint_files (
  checkpoint_id TEXT NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  digest TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (checkpoint_id, path)
) WITHOUT ROWID;

CREATE TABLE base_models (
  name TEXT PRIMARY KEY,
  worker_id TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL
);

CREATE TABLE cache_entries (
  key TEXT PRIMARY KEY,
  metadata_json TEXT NOT NULL,
  update_time_ms INTEGER NOT NULL
);

CREATE TABLE cache_items (
  key TEXT NOT NULL REFERENCES cache_entries(key) ON DELETE CASCADE,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (key, name)
) WITHOUT ROWID;
)sql";

// Version 2: a caption per image of a set (text-to-image training); "" means none, which is
// what every image stored before this version gets.
constexpr std::string_view kV2 = R"sql(
ALTER TABLE images ADD COLUMN caption TEXT NOT NULL DEFAULT '';
)sql";

// Version 3: tenants and API keys. Every image set and job belongs to a tenant (what existed
// before belongs to "default"); request ids are scoped to their tenant; api_keys holds the
// SHA-256 of each key's secret, never the secret. Events' numbers may be NaN (stored as NULL).
constexpr std::string_view kV3 = R"sql(
ALTER TABLE image_sets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX image_sets_by_tenant ON image_sets(tenant, seq);
CREATE INDEX jobs_by_tenant ON jobs(tenant, seq);

CREATE TABLE request_ids_v3 (
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  job_id TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, request_id)
);
INSERT INTO request_ids_v3 (tenant, request_id, fingerprint, job_id, create_time_ms)
  SELECT 'default', request_id, fingerprint, job_id, create_time_ms FROM request_ids;
DROP TABLE request_ids;
ALTER TABLE request_ids_v3 RENAME TO request_ids;
CREATE INDEX request_ids_by_time ON request_ids(create_time_ms);

-- Events keep non-finite numbers: SQLite stores a NaN as NULL, so the REAL columns are nullable
-- (NULL reads back as NaN). A diverging run's NaN loss is recorded, not refused.
CREATE TABLE events_v3 (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  step INTEGER NOT NULL,
  total INTEGER NOT NULL,
  loss REAL,
  learning_rate REAL,
  images_per_second REAL,
  eta_seconds REAL,
  message TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
INSERT INTO events_v3 SELECT job_id, sequence, time_ms, kind, state, stage, step, total, loss,
  learning_rate, images_per_second, eta_seconds, message, attempt FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('tenant', 'admin', 'worker')),
  secret_sha256 TEXT NOT NULL,
  description TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  revoke_time_ms INTEGER NOT NULL DEFAULT 0
);
)sql";

// Version 4: lease-scoped worker access. Shared cache entries belong to a tenant (entries stored
// before belong to "default"); lease_blobs records which blobs each lease wrote, so a lease may
// read and commit only what its task may see, and the garbage collector spares blobs a live
// lease may still commit. Indexes by digest serve both.
constexpr std::string_view kV4 = R"sql(
CREATE TABLE cache_entries_v4 (
  tenant TEXT NOT NULL,
  key TEXT NOT NULL,
  metadata_json TEXT NOT NULL,
  update_time_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, key)
);
CREATE TABLE cache_items_v4 (
  tenant TEXT NOT NULL,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (tenant, key, name),
  FOREIGN KEY (tenant, key) REFERENCES cache_entries_v4(tenant, key) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO cache_entries_v4 (tenant, key, metadata_json, update_time_ms)
  SELECT 'default', key, metadata_json, update_time_ms FROM cache_entries;
INSERT INTO cache_items_v4 (tenant, key, name, digest, size_bytes)
  SELECT 'default', key, name, digest, size_bytes FROM cache_items;
DROP TABLE cache_items;
DROP TABLE cache_entries;
ALTER TABLE cache_entries_v4 RENAME TO cache_entries;
ALTER TABLE cache_items_v4 RENAME TO cache_items;
CREATE INDEX cache_items_by_digest ON cache_items(digest);

CREATE TABLE lease_blobs (
  lease_token TEXT NOT NULL,
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  PRIMARY KEY (lease_token, digest)
) WITHOUT ROWID;
CREATE INDEX lease_blobs_by_digest ON lease_blobs(digest);
CREATE INDEX lease_blobs_by_job ON lease_blobs(job_id);

CREATE INDEX images_by_digest ON images(digest);
CREATE INDEX checkpoint_files_by_digest ON checkpoint_files(digest);
)sql";

// Version 5: device-aware scheduling. A job needs num_devices devices of one worker and is
// claimed by priority, then age (jobs stored before: 1 device, priority 0). Workers record what
// they last reported, so CreateJob can refuse a job no registered worker could run.
constexpr std::string_view kV5 = R"sql(
ALTER TABLE jobs ADD COLUMN num_devices INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_claim_order ON jobs(state, priority DESC, seq);

CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  device_kind TEXT NOT NULL,
  device_count INTEGER NOT NULL,
  device_memory_bytes INTEGER NOT NULL,
  device_free_memory_bytes INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Version 6: multi-node gangs. A job with num_nodes > 1 is led by the worker holding the job's
// lease (node 0, serving the rendezvous at gang_rendezvous); the other nodes hold member leases
// here, which end with the attempt (every row goes when the job leaves RUNNING). Workers record
// the address they would serve a gang's rendezvous at ('' = they take no gang jobs).
constexpr std::string_view kV6 = R"sql(
ALTER TABLE jobs ADD COLUMN num_nodes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN gang_rendezvous TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN gang_address TEXT NOT NULL DEFAULT '';

CREATE TABLE gang_members (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  node_rank INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  lease_token TEXT NOT NULL UNIQUE,
  lease_expires_ms INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, node_rank)
) WITHOUT ROWID;
)sql";

// Version 7: the API's labels (a JSON object on jobs and image sets, filtered with json_extract),
// upload request ids, a checkpoint's metrics at its step, and which workers have which base
// model (base_models keeps the newest one per name).
constexpr std::string_view kV7 = R"sql(
ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE image_sets ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE checkpoints ADD COLUMN loss REAL;
ALTER TABLE checkpoints ADD COLUMN learning_rate REAL;

CREATE TABLE upload_requests (
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  set_id TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, request_id)
) WITHOUT ROWID;

CREATE TABLE base_model_workers (
  name TEXT NOT NULL,
  worker_id TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  PRIMARY KEY (name, worker_id)
) WITHOUT ROWID;
INSERT INTO base_model_workers (name, worker_id, last_seen_ms)
  SELECT name, worker_id, last_seen_ms FROM base_models;
)sql";

// Version 8: webhooks. A job's webhook (URL, event mask, HMAC secret) lives on its row; each
// matching event queues a delivery in the transaction that stores the event (an outbox), and
// the daemon's dispatcher POSTs it, recording every attempt. Both go with their job.
constexpr std::string_view kV8 = R"sql(
ALTER TABLE jobs ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN webhook_events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT '';

CREATE TABLE webhook_deliveries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  event_type INTEGER NOT NULL,
  event_sequence INTEGER NOT NULL,
  body TEXT NOT NULL,
  state INTEGER NOT NULL,
  create_time_ms INTEGER NOT NULL,
  next_attempt_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_ms);
CREATE INDEX webhook_deliveries_of_job ON webhook_deliveries(job_id, seq);

CREATE TABLE webhook_attempts (
  delivery_seq INTEGER NOT NULL REFERENCES webhook_deliveries(seq) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  start_time_ms INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  http_status INTEGER NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (delivery_seq, number)
) WITHOUT ROWID;
)sql";

}  // namespace

const std::vector<std::string_view>& Migrations() {
  static const auto* migrations =
      new std::vector<std::string_view>{kV1, kV2, kV3, kV4, kV5, kV6, kV7, kV8};
  return *migrations;
}

}  // namespace dreambooth::storage
