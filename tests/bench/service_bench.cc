// Service benchmarks against a real dreamboothd on loopback:
//   1. upload throughput (MB/s) of a ~200 MB image set (JPEGs, 1 MiB chunks, full validation);
//   2. CreateJob latency p50/p99 with 1 and 16 concurrent clients;
//   3. claim + complete throughput (jobs/s) through the WorkerGateway.
// Usage: service_bench [--upload-mb=200] [--creates=400] [--claims=400] [--workers=4]
// Prints one line per measurement. --help lists the options; bad usage exits with status 2.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "common/cli_flags.h"
#include "tests/testing/daemon.h"
#include "tests/testing/image_files.h"
#include "tests/testing/temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
using dreambooth::v1::JobSpec;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "service_bench: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dreambooth;
  CLI::App app("Service benchmarks against a real dreamboothd on loopback.", "service_bench");
  cli::ConfigureApp(app);
  int upload_mb = 200;
  int creates = 400;
  int claims = 400;
  int workers = 4;
  cli::AddInt(app, "--upload-mb", &upload_mb, "size of the uploaded image set", 1, 1 << 20);
  cli::AddInt(app, "--creates", &creates, "CreateJob calls per concurrency level", 1);
  cli::AddInt(app, "--claims", &claims, "jobs claimed and completed through the gateway", 1);
  cli::AddInt(app, "--workers", &workers, "concurrent claiming workers", 1);
  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;

  testing::TempDir dir;
  testing::DaemonOptions options;
  options.data_dir = dir.Join("data");
  options.extra_args = {"--log-level=warn"};
  auto daemon = testing::Daemon::Start(options);
  if (!daemon.ok()) Die(daemon.status().ToString());
  client::ClientOptions client_options;
  client_options.target = (*daemon)->address();
  client::Client client(client_options);

  // 1. Upload: 1024x1024 noise JPEGs (about 1.2 MB each) until upload_mb is reached.
  std::vector<client::UploadFile> files;
  int64_t total_bytes = 0;
  for (uint32_t i = 0; total_bytes < int64_t{upload_mb} << 20; ++i) {
    files.push_back(
        {"img" + std::to_string(i) + ".jpg",
         testing::MakeJpeg(testing::Noise(1024, 1024, i + 1), testing::JpegColor::kRgb, 95)});
    total_bytes += static_cast<int64_t>(files.back().bytes.size());
  }
  const auto t0 = Clock::now();
  auto uploaded = client.Upload(files, "", "bench");
  const double upload_s = Seconds(Clock::now() - t0);
  if (!uploaded.ok()) Die(uploaded.status().ToString());
  std::printf("upload: %zu files, %.1f MB in %.2f s = %.1f MB/s\n", files.size(), total_bytes / 1e6,
              upload_s, total_bytes / 1e6 / upload_s);
  const std::string set = uploaded->image_set().id();

  JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set(set);
  spec.set_instance_prompt("a photo of sks dog");

  // 2. CreateJob latency with 1 and 16 concurrent clients (each its own channel).
  for (int concurrency : {1, 16}) {
    std::vector<std::vector<double>> latencies(concurrency);
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int t = 0; t < concurrency; ++t) {
      threads.emplace_back([&, t] {
        client::Client c(client_options);
        for (int i = t; i < creates; i += concurrency) {
          const auto s = Clock::now();
          auto job = c.CreateJob(spec);
          if (!job.ok()) Die(job.status().ToString());
          latencies[t].push_back(Seconds(Clock::now() - s) * 1000);
        }
      });
    }
    for (auto& th : threads) th.join();
    const double wall = Seconds(Clock::now() - start);
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::printf("create_job concurrency=%d: n=%zu p50=%.2f ms p99=%.2f ms (%.0f jobs/s)\n",
                concurrency, all.size(), Percentile(all, 0.5), Percentile(all, 0.99),
                all.size() / wall);
  }

  // 3. claim + complete through the gateway: `workers` threads drain `claims` jobs (the jobs
  // created above plus more if needed).
  for (int i = 2 * creates; i < claims; ++i) {
    if (!client.CreateJob(spec).ok()) Die("create for claims failed");
  }
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      client::ClientOptions worker_options = client_options;
      worker_options.target = (*daemon)->worker_address();
      client::Client c(worker_options);
      while (done.load() < claims) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::LeaseTaskRequest lease;
        lease.set_worker_id("bench-" + std::to_string(w));
        v1::LeaseTaskResponse got;
        grpc::Status s = c.gateway().LeaseTask(&ctx, lease, &got);
        if (!s.ok()) Die("lease: " + s.error_message());
        if (!got.has_task()) return;
        // A job succeeds only with a FINAL checkpoint: one small file written under the lease.
        const std::string token = got.task().lease_token();
        {
          grpc::ClientContext ctx_w;
          ctx_w.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::WriteBlobResponse written;
          auto writer = c.gateway().WriteBlob(&ctx_w, &written);
          v1::WriteBlobRequest chunk;
          chunk.mutable_header()->set_lease_token(token);
          writer->Write(chunk);
          chunk.set_chunk("final weights of " + got.task().job_id());
          writer->Write(chunk);
          writer->WritesDone();
          s = writer->Finish();
          if (!s.ok()) Die("write blob: " + s.error_message());
          grpc::ClientContext ctx_c;
          ctx_c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::CommitCheckpointRequest commit;
          commit.set_lease_token(token);
          commit.set_kind(v1::CHECKPOINT_KIND_FINAL);
          v1::CheckpointFile* file = commit.add_files();
          file->set_path("unet/diffusion_pytorch_model.safetensors");
          file->set_digest(written.digest());
          file->set_size_bytes(written.size_bytes());
          v1::CommitCheckpointResponse committed;
          s = c.gateway().CommitCheckpoint(&ctx_c, commit, &committed);
          if (!s.ok()) Die("commit: " + s.error_message());
        }
        grpc::ClientContext ctx2;
        ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::CompleteTaskRequest complete;
        complete.set_lease_token(got.task().lease_token());
        v1::CompleteTaskResponse completed;
        s = c.gateway().CompleteTask(&ctx2, complete, &completed);
        if (!s.ok()) Die("complete: " + s.error_message());
        done.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  const double claim_s = Seconds(Clock::now() - start);
  std::printf("claim+commit+complete workers=%d: %d jobs in %.2f s = %.0f jobs/s\n", workers,
              done.load(), claim_s, done.load() / claim_s);
  return 0;
}
