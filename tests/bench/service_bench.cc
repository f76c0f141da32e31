// Service benchmarks against a real dreamboothd on loopback:
//   1. upload throughput (MB/s) of a ~200 MB image set (JPEGs, 1 MiB chunks, full validation);
//   2. CreateJob latency p50/p99 with 1 and 16 concurrent clients;
//   3. claim + commit + complete throughput (jobs/s) through the WorkerGateway;
//   4. with --heavy-uploads=N: a worker's Heartbeat latency while N uploads of one 36-megapixel
//      PNG each run at once (decoding must not starve the worker service).
// Usage: service_bench [--upload-mb=200] [--creates=400] [--claims=400] [--workers=4]
//                      [--heavy-uploads=0]
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
#include "tests/testing/worker_gateway_client.h"

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
  int heavy_uploads = 0;
  cli::AddInt(app, "--heavy-uploads", &heavy_uploads,
              "concurrent 36 MP uploads during a heartbeat-latency measurement (0: skip)", 0, 200);
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
      testing::WorkerGatewayClient c(worker_options);
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
  if (heavy_uploads == 0) return 0;

  // 4. Heartbeats of a leased job every 100 ms while `heavy_uploads` uploads of a 6000x6000 PNG
  // (a smooth gradient: a few MB on the wire, 108 MB decoded) run at once.
  // The images first: making them takes longer than a lease lives.
  image::Image big;
  big.width = big.height = 6000;
  big.rgb.resize(size_t{6000} * 6000 * 3);
  for (int y = 0; y < 6000; ++y) {
    for (int x = 0; x < 6000; ++x) {
      uint8_t* px = &big.rgb[(size_t{6000} * y + x) * 3];
      px[0] = static_cast<uint8_t>(x / 24);
      px[1] = static_cast<uint8_t>(y / 24);
      px[2] = static_cast<uint8_t>((x + y) / 48);
    }
  }
  std::vector<std::string> pngs;
  for (int i = 0; i < heavy_uploads; ++i) {
    big.rgb[0] = static_cast<uint8_t>(i);  // a distinct file each (no deduplication)
    big.rgb[1] = static_cast<uint8_t>(i >> 8);
    pngs.push_back(testing::MakePng(big, testing::PngVariant::kRgb8));
  }
  if (!client.CreateJob(spec).ok()) Die("create for heartbeats failed");
  client::ClientOptions worker_options = client_options;
  worker_options.target = (*daemon)->worker_address();
  testing::WorkerGatewayClient worker(worker_options);
  v1::LeaseTaskResponse leased;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::LeaseTaskRequest lease;
    lease.set_worker_id("heartbeat-bench");
    if (!worker.gateway().LeaseTask(&ctx, lease, &leased).ok() || !leased.has_task()) {
      Die("lease for heartbeats failed");
    }
  }
  std::atomic<bool> uploading{true};
  std::vector<double> beats_ms;
  std::thread beater([&] {
    while (uploading.load()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::HeartbeatRequest beat;
      beat.set_lease_token(leased.task().lease_token());
      v1::HeartbeatResponse response;
      const auto t0 = Clock::now();
      const grpc::Status s = worker.gateway().Heartbeat(&ctx, beat, &response);
      if (!s.ok()) Die("heartbeat failed: " + s.error_message());
      beats_ms.push_back(Seconds(Clock::now() - t0) * 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const auto upload_start = Clock::now();
  std::vector<std::thread> uploaders;
  std::atomic<int> heavy_ok{0};
  for (int i = 0; i < heavy_uploads; ++i) {
    uploaders.emplace_back([&, i] {
      client::Client c(client_options);
      if (c.Upload({{"big.png", pngs[i]}}, "", "heavy").ok()) heavy_ok.fetch_add(1);
    });
  }
  for (auto& th : uploaders) th.join();
  const double heavy_s = Seconds(Clock::now() - upload_start);
  uploading.store(false);
  beater.join();
  std::printf(
      "heartbeat during %d concurrent 36 MP uploads (%d ok, %.1f MB PNG each, %.1f s): %zu beats, "
      "p50 %.1f ms, max %.1f ms\n",
      heavy_uploads, heavy_ok.load(), pngs[0].size() / 1e6, heavy_s, beats_ms.size(),
      Percentile(beats_ms, 0.5), Percentile(beats_ms, 1.0));
  return 0;
}
