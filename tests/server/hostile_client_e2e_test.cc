// A real dreamboothd against clients that misbehave (issue 11): uploads cancelled mid-stream,
// Sample calls no worker takes, requests that are not valid messages, and storage failures whose
// details must stay in the server log.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {
namespace {

std::vector<v1::UploadImagesRequest> UploadMessages(const std::string& image_set_id, int files) {
  std::vector<v1::UploadImagesRequest> messages(1);
  messages[0].mutable_target()->set_image_set_id(image_set_id);
  messages[0].mutable_target()->set_display_name("cancelled");
  for (int i = 0; i < files; ++i) {
    v1::UploadImagesRequest header;
    header.mutable_file()->set_name(absl::StrCat("cancelled", i, ".jpg"));
    messages.push_back(header);
    v1::UploadImagesRequest chunk;
    chunk.set_chunk(
        MakeJpeg(Noise(40 + 8 * i, 40, static_cast<uint32_t>(100 + i)), JpegColor::kRgb));
    messages.push_back(chunk);
  }
  return messages;
}

// Sends `messages` on an UploadImages stream, gives the server time to read and store them, then
// cancels the call instead of half-closing it; returns the status the client sees.
grpc::Status UploadThenCancel(client::Client& client,
                              const std::vector<v1::UploadImagesRequest>& messages) {
  grpc::ClientContext c;
  v1::UploadImagesResponse response;
  auto writer = client.stub().UploadImages(&c, &response);
  for (const auto& m : messages) {
    if (!writer->Write(m)) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  c.TryCancel();
  return writer->Finish();
}

using HostileClientTest = E2eTest;

TEST_F(HostileClientTest, UploadCancelledMidStreamCreatesNoImageSet) {
  const std::string existing = UploadImages(1);
  // Three complete files, but the stream is cancelled instead of half-closed.
  const grpc::Status status = UploadThenCancel(*client_, UploadMessages("", 3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();

  // Whatever the server did with the cancelled call, it did within this time.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  absl::StatusOr<v1::ListImageSetsResponse> sets = client_->ListImageSets(100, "");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->image_sets_size(), 1) << sets->DebugString();
  EXPECT_EQ(sets->image_sets(0).id(), existing);
}

TEST_F(HostileClientTest, UploadCancelledMidStreamAddsNothingToAnExistingSet) {
  const std::string existing = UploadImages(1);
  const grpc::Status status = UploadThenCancel(*client_, UploadMessages(existing, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();

  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  absl::StatusOr<v1::ImageSet> set = client_->GetImageSet(existing);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->images_size(), 1) << set->DebugString();
  // A completed upload of the same files still works and adds both.
  grpc::ClientContext c;
  v1::UploadImagesResponse response;
  auto writer = client_->stub().UploadImages(&c, &response);
  for (const auto& m : UploadMessages(existing, 2)) ASSERT_TRUE(writer->Write(m));
  writer->WritesDone();
  const grpc::Status done = writer->Finish();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_EQ(response.image_set().images_size(), 3);
}

}  // namespace
}  // namespace dreambooth::testing
