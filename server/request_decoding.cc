#include "server/request_decoding.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include <cstdlib>
#include <iostream>

namespace dreambooth::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

thread_local const absl::Status* current_decode_error = nullptr;

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// Walks one message of `type` in `in`; sets *bad_field to the dotted path of the first string
// field holding invalid UTF-8. False when the wire format itself is malformed.
bool FindInvalidUtf8(const Descriptor& type, CodedInputStream* in, const std::string& prefix,
                     std::string* bad_field) {
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return in->ConsumedEntireMessage() || in->BytesUntilLimit() <= 0;
    const FieldDescriptor* field = type.FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (field == nullptr || !delimited ||
        (field->type() != FieldDescriptor::TYPE_STRING &&
         field->type() != FieldDescriptor::TYPE_MESSAGE)) {
      if (!WireFormatLite::SkipField(in, tag)) return false;
      continue;
    }
    std::string value;
    uint32_t length = 0;
    if (!in->ReadVarint32(&length) || !in->ReadString(&value, static_cast<int>(length))) {
      return false;
    }
    const std::string path = prefix + field->name();
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!IsValidUtf8(value)) {
        *bad_field = path;
        return true;
      }
      continue;
    }
    CodedInputStream nested(reinterpret_cast<const uint8_t*>(value.data()),
                            static_cast<int>(value.size()));
    if (!FindInvalidUtf8(*field->message_type(), &nested, path + ".", bad_field)) return false;
    if (!bad_field->empty()) return true;
  }
}

}  // namespace

absl::Status RequestDecodeError() {
  return current_decode_error != nullptr ? *current_decode_error : absl::OkStatus();
}

std::string DescribeUndecodable(const Descriptor& type, std::string_view bytes) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  std::string bad_field;
  if (FindInvalidUtf8(type, &in, "", &bad_field) && !bad_field.empty()) {
    return "field '" + bad_field +
           "' is not valid UTF-8 (string fields must be UTF-8 text; send binary data as bytes)";
  }
  return "malformed protobuf wire format";
}

int MethodIndex(const std::string& service_full_name, const std::string& name) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_full_name);
  const google::protobuf::MethodDescriptor* method =
      service != nullptr ? service->FindMethodByName(name) : nullptr;
  if (method == nullptr) {
    std::cerr << "MethodIndex: no method " << service_full_name << "." << name << std::endl;
    std::abort();
  }
  return method->index();
}

namespace internal {

DecodeErrorScope::DecodeErrorScope(const absl::Status* error) : previous_(current_decode_error) {
  current_decode_error = error;
}

DecodeErrorScope::~DecodeErrorScope() { current_decode_error = previous_; }

std::string ReadAll(grpc_byte_buffer* buffer) {
  if (buffer == nullptr) return "";
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, buffer)) return "";
  grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
  std::string bytes(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                    GRPC_SLICE_LENGTH(slice));
  grpc_slice_unref(slice);
  grpc_byte_buffer_reader_destroy(&reader);
  return bytes;
}

}  // namespace internal
}  // namespace dreambooth::server
