// dbctl images list|get|delete and models list.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {
namespace {

// "2026-01-02T03:04:05Z" for Unix milliseconds; "-" for 0.
std::string TimeText(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

struct ListArgs {
  std::string filter;
  int32_t page_size = 0;
  std::string page_token;
  bool all = false;
};

int ImagesList(client::Client& client, const ListArgs& args, const Output& out) {
  v1::ListImageSetsRequest request;
  request.set_filter(args.filter);
  request.set_page_size(args.page_size);
  if (out.format == Format::kTable) {
    std::printf("%-20s %-7s %-12s %-20s %-24s %s\n", "ID", "IMAGES", "BYTES", "CREATED", "NAME",
                "LABELS");
  }
  return PrintPages(
      out, args.all, args.page_token,
      [&](const std::string& token) {
        request.set_page_token(token);
        return client.ListImageSets(request);
      },
      [](const v1::ListImageSetsResponse& page) -> const auto& { return page.image_sets(); },
      [](const v1::ImageSet& set) {
        std::printf("%-20s %-7d %-12lld %-20s %-24s %s\n", set.id().c_str(), set.images_size(),
                    static_cast<long long>(set.total_bytes()),
                    TimeText(set.create_time_ms()).c_str(), set.display_name().c_str(),
                    LabelsText(set.labels()).c_str());
      });
}

int ImagesGet(client::Client& client, const std::string& id, const Output& out) {
  auto set = client.GetImageSet(id);
  if (!set.ok()) return Fail(set.status());
  if (out.json()) {
    std::cout << Json(*set) << "\n";
    return kExitOk;
  }
  if (out.name()) {
    std::cout << set->id() << "\n";
    return kExitOk;
  }
  std::cout << "id:          " << set->id() << "\n"
            << "name:        " << set->display_name() << "\n"
            << "created:     " << TimeText(set->create_time_ms()) << "\n"
            << "labels:      " << LabelsText(set->labels()) << "\n"
            << "images:      " << set->images_size() << " (" << set->total_bytes() << " bytes)\n";
  for (const v1::StoredImage& img : set->images()) {
    std::printf("  %-32s %5dx%-5d %-4s %s  %s\n", img.name().c_str(), img.width(), img.height(),
                img.format().c_str(), img.digest().substr(0, 16).c_str(),
                img.caption().empty() ? "-" : img.caption().c_str());
  }
  return kExitOk;
}

int ImagesDelete(client::Client& client, const std::string& id, const Output& out) {
  if (absl::Status s = client.DeleteImageSet(id); !s.ok()) return Fail(s);
  if (out.json()) {
    std::cout << "{\"image_set_id\":\"" << id << "\",\"deleted\":true}\n";
  } else if (out.name()) {
    std::cout << id << "\n";
  } else {
    std::printf("%s deleted\n", id.c_str());
  }
  return kExitOk;
}

int ModelsList(client::Client& client, const Output& out) {
  auto models = client.ListBaseModels();
  if (!models.ok()) return Fail(models.status());
  if (out.format == Format::kTable) {
    std::printf("%-32s %-8s %s\n", "NAME", "WORKERS", "LAST SEEN");
  }
  for (const v1::BaseModel& m : models->base_models()) {
    if (out.json()) {
      std::cout << Json(m) << "\n";
    } else if (out.name()) {
      std::cout << m.name() << "\n";
    } else {
      std::printf("%-32s %-8d %s\n", m.name().c_str(), m.worker_count(),
                  TimeText(m.last_seen_time_ms()).c_str());
    }
  }
  return kExitOk;
}

// A subcommand of `images` taking one IMAGE_SET_ID; `run` gets it.
Command AddImageSetIdCommand(
    CLI::App& images, const char* name, const char* summary,
    std::function<int(client::Client&, const std::string&, const Output&)> run) {
  CLI::App* cmd = images.add_subcommand(name, summary);
  auto id = std::make_shared<std::string>();
  cmd->add_option("IMAGE_SET_ID", *id, "the image set (is_...)")->required();
  return {cmd,
          [id, run](client::Client& client, const Output& out) { return run(client, *id, out); }};
}

}  // namespace

Command AddImagesList(CLI::App& images) {
  CLI::App* cmd = images.add_subcommand("list", "List image sets");
  auto a = std::make_shared<ListArgs>();
  cli::AddString(*cmd, "--filter", &a->filter,
                 "terms joined by ' AND ': labels.KEY=VALUE, labels.KEY:* (has the key)");
  cli::AddInt(*cmd, "--page-size", &a->page_size, "sets per page (0: the server's default)", 0,
              std::numeric_limits<int32_t>::max());
  cli::AddString(*cmd, "--page-token", &a->page_token, "continue from a previous page");
  cli::AddSwitch(*cmd, "--all", &a->all, true, "follow next_page_token to the end");
  return {cmd,
          [a](client::Client& client, const Output& out) { return ImagesList(client, *a, out); }};
}

Command AddImagesGet(CLI::App& images) {
  return AddImageSetIdCommand(images, "get", "Show an image set and its images (with captions)",
                              ImagesGet);
}

Command AddImagesDelete(CLI::App& images) {
  return AddImageSetIdCommand(images, "delete",
                              "Delete an image set (its bytes are freed by the next garbage "
                              "collection)",
                              ImagesDelete);
}

Command AddModelsList(CLI::App& models) {
  CLI::App* cmd = models.add_subcommand(
      "list",
      "List the base models jobs may use (jobs submit --base-model): those some worker "
      "registered recently, and the built-in tiny");
  return {cmd, [](client::Client& client, const Output& out) { return ModelsList(client, out); }};
}

}  // namespace dreambooth::dbctl
