// Fine-tunes the built-in `toy` model on image files through the C++ SDK (client/client.h),
// watches the job, samples from it and writes the PNGs: the C++ twin of
// examples/python/quickstart.py. See README.md beside this file for how to build it.
//
// usage: quickstart OUT_DIR IMAGE...   (dreamboothd at $DREAMBOOTH_SERVER or 127.0.0.1:50051)
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "client/client.h"

namespace v1 = dreambooth::v1;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: quickstart OUT_DIR IMAGE...\n";
    return 2;
  }
  const std::filesystem::path out_dir = argv[1];
  const std::vector<std::string> images(argv + 2, argv + argc);

  dreambooth::client::ClientOptions options;
  if (const char* server = std::getenv("DREAMBOOTH_SERVER")) options.target = server;
  if (const char* key = std::getenv("DREAMBOOTH_API_KEY")) options.security.api_key = key;
  dreambooth::client::Client client(options);

  // Upload: a new image set; "<stem>.txt" beside an image becomes its caption.
  absl::StatusOr<v1::UploadImagesResponse> upload = client.UploadFiles(images, "", "quickstart");
  if (!upload.ok()) {
    std::cerr << "upload: " << upload.status() << "\n";
    return 1;
  }

  // Fields left unset take the server's defaults (job_spec.proto lists them).
  v1::JobSpec spec;
  spec.set_base_model("toy");
  spec.set_instance_image_set(upload->image_set().id());
  spec.set_instance_prompt("a photo of sks toy");
  spec.set_resolution(64);
  spec.set_max_train_steps(300);
  spec.set_learning_rate(3e-4);
  absl::StatusOr<v1::Job> job = client.CreateJob(spec);  // a fresh request_id: retries are safe
  if (!job.ok()) {
    std::cerr << "create job: " << job.status() << "\n";  // INVALID_ARGUMENT names the field
    return 1;
  }
  std::cout << "job " << job->id() << "\n";

  // Events until the job is terminal; reconnects by itself without gaps or duplicates.
  absl::Status watched = client.WatchJob(job->id(), 0, [](const v1::JobEvent& e) {
    if (e.kind() == v1::EVENT_KIND_PROGRESS) {
      std::cout << v1::JobStage_Name(e.stage()) << " " << e.step() << "/" << e.total()
                << (e.loss() > 0 ? " loss " + std::to_string(e.loss()) : "") << "\n";
    }
    return true;  // false stops watching
  });
  absl::StatusOr<v1::Job> done = client.GetJob(job->id());
  if (!watched.ok() || !done.ok() || done->state() != v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "job did not succeed: " << (done.ok() ? done->error() : watched.ToString())
              << "\n";
    return 1;
  }

  // Four samples from the newest sampleable checkpoint.
  v1::SampleRequest request;
  request.set_job_id(job->id());
  request.set_prompt("a photo of sks toy on a beach");
  request.set_num_images(4);
  request.mutable_sampler()->set_num_inference_steps(25);
  std::filesystem::create_directories(out_dir);
  absl::Status sampled = client.Sample(request, [&](const v1::SampleResponse& r) {
    if (!r.has_image()) return;  // progress
    const std::filesystem::path path =
        out_dir / ("beach-" + std::to_string(r.image().index()) + ".png");
    std::ofstream(path, std::ios::binary) << r.image().png();
    std::cout << "wrote " << path.string() << "\n";
  });
  if (!sampled.ok()) {
    std::cerr << "sample: " << sampled << "\n";
    return 1;
  }
  return 0;
}
