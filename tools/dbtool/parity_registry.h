// Golden checks for `dbtool parity FIXTURE_DIR`. A fixture folder holds golden/<name>.safetensors
// files (inputs and reference outputs of diffusers/transformers), golden/schedules.json and
// golden/manifest.json, or a tokenizer cases.json. Each tools/dbtool/parity_<name>.cc registers
// the check for one golden file name with DB_REGISTER_PARITY_CHECK; the runner
// (cmd_parity.cc) calls it with the loaded golden tensors and a reporter. A golden file with no
// registered check is reported as SKIP.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_PARITY_REGISTRY_H_
#define DREAMBOOTH_TOOLS_DBTOOL_PARITY_REGISTRY_H_

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {
struct StableDiffusion;
}  // namespace dreambooth::diffusion

namespace dreambooth::dbtool {

// Tolerance for one golden tensor. A check passes when max |actual - expected| <= max_abs (when
// max_abs >= 0) and ||actual - expected||_2 / ||expected||_2 <= rel_l2 (when rel_l2 >= 0);
// `exact` requires equal values. Integer tensors are always compared exactly.
struct Tolerance {
  double max_abs = -1;
  bool exact = false;
  double rel_l2 = -1;

  static Tolerance Exact() { return {-1, true, -1}; }
  static Tolerance MaxAbs(double max_abs, double rel_l2 = -1) { return {max_abs, false, rel_l2}; }
  static Tolerance RelL2(double rel_l2) { return {-1, false, rel_l2}; }
  std::string ToString() const;
};

// Prints one line per result ("name  max_abs_err  tolerance  PASS|FAIL|SKIP reason") to stdout
// and counts failures. Not thread-safe.
class ParityReporter {
 public:
  // Compares `actual` with `expected` (shape must match; compared in float64 on CPU) and reports
  // PASS when the largest absolute difference is within `tolerance`. Returns whether it passed.
  bool Compare(const std::string& name, const at::Tensor& actual, const at::Tensor& expected,
               const Tolerance& tolerance);
  // Reports errors already computed (rel_l2_err < 0: not measured).
  bool Report(const std::string& name, double max_abs_err, double rel_l2_err,
              const Tolerance& tolerance);
  bool Report(const std::string& name, double max_abs_err, const Tolerance& tolerance) {
    return Report(name, max_abs_err, -1, tolerance);
  }
  void Fail(const std::string& name, const std::string& reason);
  void Skip(const std::string& name, const std::string& reason);

  int failures() const { return failures_; }
  int passes() const { return passes_; }
  int skips() const { return skips_; }

 private:
  void Print(const std::string& name, const std::string& err, const std::string& tol,
             const std::string& verdict);
  int failures_ = 0;
  int passes_ = 0;
  int skips_ = 0;
};

// What a check gets.
struct ParityContext {
  std::string fixture_dir;  // the folder passed to `dbtool parity`
  std::string golden_name;  // file stem, e.g. "ddim" for golden/ddim.safetensors
  std::string golden_path;  // full path of the golden file
  const diffusion::TensorMap* golden = nullptr;  // its tensors (empty for .json goldens)
  const nlohmann::json* manifest = nullptr;      // golden/manifest.json, or an empty object
  // The fixture's model loaded from fixture_dir on `device` in `dtype` (once, on first call).
  std::function<absl::StatusOr<diffusion::StableDiffusion*>()> model;
  // Where model checks run (`dbtool parity --device`); goldens are read on the CPU.
  at::Device device = at::kCPU;
  // The model's weight dtype (`dbtool parity --dtype`). Float32 is the parity mode: every check
  // uses the fixture's tolerances. In bf16/fp16 the model checks use `reduced_precision`.
  at::ScalarType dtype = at::kFloat;
  Tolerance reduced_precision;
  bool cuda_graphs = false;  // pipeline runs replay the UNet as a CUDA graph (on CUDA)

  // `t` (a golden input) moved to `device`.
  at::Tensor OnDevice(const at::Tensor& t) const { return t.to(device); }
  // A golden activation fed to the model: on `device`, in the model's dtype.
  at::Tensor ModelInput(const at::Tensor& t) const { return t.to(device, dtype); }
  bool reduced() const { return dtype != at::kFloat; }

  // Tolerance of golden tensor `tensor` of this golden file: from the manifest's "tolerances"
  // when it has them, else the table of the fixture README (built in), else `fallback`.
  Tolerance ToleranceFor(const std::string& tensor,
                         Tolerance fallback = Tolerance::MaxAbs(1e-4)) const;
  // Tolerance of a model output: ToleranceFor(tensor) in float32, `reduced_precision` otherwise.
  Tolerance ModelToleranceFor(const std::string& tensor) const {
    return reduced() ? reduced_precision : ToleranceFor(tensor);
  }
  // The golden tensor `name`, or nullptr (the reporter gets a FAIL line) when absent.
  const at::Tensor* Get(const std::string& name, ParityReporter& reporter) const;
};

struct ParityCheck {
  std::string golden;       // golden file stem: "unet", "ddim", "schedules", "manifest", ...
  std::string description;  // one line
  std::function<void(const ParityContext&, ParityReporter&)> run;
};

// Registers `check` (one per golden name); returns true for static initialisers.
bool RegisterParityCheck(ParityCheck check);
// The registered checks by golden name.
const std::map<std::string, ParityCheck>& ParityChecks();

// Built-in tolerance table: key "<golden>/<tensor>", from tests/data/fixtures/README.md.
const std::map<std::string, Tolerance>& ReadmeTolerances();

}  // namespace dreambooth::dbtool

// DB_REGISTER_PARITY_CHECK({"golden", "description", RunFunction});
#define DB_PARITY_CONCAT_INNER_(a, b) a##b
#define DB_PARITY_CONCAT_(a, b) DB_PARITY_CONCAT_INNER_(a, b)
#define DB_REGISTER_PARITY_CHECK(...)                                    \
  static const bool DB_PARITY_CONCAT_(db_parity_registered_, __LINE__) = \
      ::dreambooth::dbtool::RegisterParityCheck(::dreambooth::dbtool::ParityCheck __VA_ARGS__)

#endif  // DREAMBOOTH_TOOLS_DBTOOL_PARITY_REGISTRY_H_
