#include "server/http_post.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace dreambooth::server {
namespace {

constexpr size_t kMaxAnswerBytes = 64 << 10;

// Discards the answer's body; stops the transfer past kMaxAnswerBytes.
size_t DropBody(char*, size_t size, size_t count, void* userdata) {
  size_t* seen = static_cast<size_t*>(userdata);
  *seen += size * count;
  return *seen > kMaxAnswerBytes ? 0 : size * count;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct HeaderListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

absl::StatusOr<int> HttpPost(const HttpPostRequest& request) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::unique_ptr<curl_slist, HeaderListDeleter> headers;
  for (const auto& [name, value] : request.headers) {
    const std::string line = absl::StrCat(name, ": ", value);
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return absl::InternalError("curl_slist_append failed");
    headers.release();
    headers.reset(appended);
  }
  // "Expect: 100-continue" would add a round trip to every POST.
  curl_slist* appended = curl_slist_append(headers.get(), "Expect:");
  if (appended == nullptr) return absl::InternalError("curl_slist_append failed");
  headers.release();
  headers.reset(appended);

  size_t answer_bytes = 0;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &DropBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer_bytes);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  // A status with a body cut at kMaxAnswerBytes is still an answer.
  if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && status != 0)) {
    return absl::UnavailableError(
        absl::StrCat("POST ", request.url, ": ", error[0] != 0 ? error : curl_easy_strerror(code)));
  }
  return static_cast<int>(status);
}

}  // namespace dreambooth::server
