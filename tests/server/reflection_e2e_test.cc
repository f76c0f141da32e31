// Server reflection answers a standard client: the ServerReflectionInfo stream (what grpcurl
// uses) lists the DreamBooth and Health services on the public port, and the WorkerGateway (and
// Health) only on the worker port. Spoken with a GenericStub and
// hand-encoded protobuf so the test needs no reflection .proto files.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include "tests/server/e2e_util.h"

namespace dreambooth::testing {
namespace {

// Runs one async op and waits for it on the completion queue.
bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  return cq->Next(&got, &ok) && got == tag && ok;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  buffer.Dump(&slices).IgnoreError();
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// The services the reflection stream of `channel` lists, as the raw response bytes.
std::string ListServices(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  int tag = 0;
  call->StartCall(&tag);
  EXPECT_TRUE(Await(&cq, &tag));
  // ServerReflectionRequest { list_services: "*" } = field 7, length-delimited.
  const std::string request("\x3a\x01*", 3);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, &tag);
  EXPECT_TRUE(Await(&cq, &tag));
  call->WritesDone(&tag);
  EXPECT_TRUE(Await(&cq, &tag));
  grpc::ByteBuffer in;
  call->Read(&in, &tag);
  EXPECT_TRUE(Await(&cq, &tag));
  const std::string response = Flatten(in);
  grpc::Status status;
  call->Finish(&status, &tag);
  EXPECT_TRUE(Await(&cq, &tag));
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  return response;
}

TEST_F(E2eTest, ReflectionListsTheServicesOfEachListener) {
  const std::string public_services = ListServices(client_->channel());
  EXPECT_NE(public_services.find("dreambooth.v1.DreamBooth"), std::string::npos);
  EXPECT_NE(public_services.find("grpc.health.v1.Health"), std::string::npos);
  EXPECT_EQ(public_services.find("dreambooth.v1.WorkerGateway"), std::string::npos);
  const std::string worker_services = ListServices(workers_->channel());
  EXPECT_NE(worker_services.find("dreambooth.v1.WorkerGateway"), std::string::npos);
  EXPECT_EQ(worker_services.find("dreambooth.v1.DreamBooth"), std::string::npos);
}

}  // namespace
}  // namespace dreambooth::testing
