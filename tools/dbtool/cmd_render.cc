// `dbtool render --out DIR --count N [--seed S] [--subject exclude|only|include] [--shape NAME]
// [--colour NAME] [--pattern NAME] [--background NAME] [--size 64] [--captions random|full|none]
// [--grid PNG]`: writes a captioned toy-world dataset (world/dataset.h; docs/toy-world.md).
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "world/dataset.h"
#include "world/render.h"
#include "world/scene.h"
#include "world/vocabulary.h"

namespace dreambooth::dbtool {
namespace {

// An option that forces one attribute of every scene to the value named.
template <typename E>
void AddAttribute(CLI::App& app, const std::string& name, std::optional<E>* value,
                  absl::StatusOr<E> (*parse)(std::string_view),
                  absl::Span<const std::string_view> names) {
  cli::AddParsed(
      app, name, value,
      [parse](const std::string& text) -> absl::StatusOr<std::optional<E>> {
        absl::StatusOr<E> parsed = parse(text);
        if (!parsed.ok()) return parsed.status();
        return std::optional<E>(*parsed);
      },
      "force this " + name.substr(2) + ": " + world::JoinNames(names), "NAME");
}

int RunRender(const CLI::App& command, const world::DatasetOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int64_t> written = world::WriteDataset(options);
  if (!written.ok()) {
    if (absl::IsInvalidArgument(written.status())) {
      return cli::UsageError(command, written.status().message());
    }
    std::fprintf(stderr, "dbtool render: %s\n", std::string(written.status().message()).c_str());
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rendered %lld images to %s in %.2f s (%.0f images/s)\n",
              static_cast<long long>(*written), options.out_dir.c_str(), seconds,
              seconds > 0.0 ? static_cast<double>(*written) / seconds : 0.0);
  return 0;
}

Runner DeclareRender(CLI::App& app) {
  auto o = std::make_shared<world::DatasetOptions>();
  cli::AddString(app, "--out", &o->out_dir, "folder to write (created when missing)")->required();
  cli::AddInt<int64_t>(app, "--count", &o->count, "number of images", 0, 100'000'000)->required();
  cli::AddInt<uint64_t>(app, "--seed", &o->seed,
                        "dataset seed; image i is a function of (seed, i) alone");
  cli::AddParsed(app, "--subject", &o->constraints.subject, world::ParseSubjectPolicy,
                 "the held-out subject (a blue striped heart): exclude (pretraining), only "
                 "(DreamBooth instance images) or include",
                 "POLICY", std::string(world::Name(o->constraints.subject)));
  AddAttribute(app, "--shape", &o->constraints.shape, world::ParseShape, world::ShapeNames());
  AddAttribute(app, "--colour", &o->constraints.colour, world::ParseColour, world::ColourNames());
  AddAttribute(app, "--pattern", &o->constraints.pattern, world::ParsePattern,
               world::PatternNames());
  AddAttribute(app, "--background", &o->constraints.background, world::ParseBackground,
               world::BackgroundNames());
  cli::AddInt<int>(app, "--size", &o->size, "image width and height in pixels", 1,
                   world::kMaxRenderSize);
  cli::AddParsed(app, "--captions", &o->captions, world::ParseCaptionMode,
                 "random (varied, with dropout), full (every attribute) or none", "MODE",
                 std::string(world::Name(o->captions)));
  cli::AddString(app, "--grid", &o->grid_path,
                 "also write a PNG contact sheet of the first (up to 64) images here");
  const CLI::App* command = &app;
  return [o, command] { return RunRender(*command, *o); };
}

DB_REGISTER_COMMAND({"render",
                     "Write a captioned dataset of procedural toy-world scenes (PNG + captions + "
                     "labels)",
                     DeclareRender});

}  // namespace
}  // namespace dreambooth::dbtool
