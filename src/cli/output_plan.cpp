// Output file names, and the check that no output replaces an input still being read.
#include "cli/output_plan.hpp"

#include "safetensors/error.hpp"

#include <set>

namespace moeq::cli {
namespace {

namespace fs = std::filesystem;

void refuse_overwriting_inputs(const safetensors::Checkpoint& input, const OutputPlan& plan) {
  for (const OutputFile& file : plan.files) {
    std::error_code error;
    for (const auto& source : input.files())
      if (fs::equivalent(file.path, source->path(), error))
        throw safetensors::Error(file.path.string() + ": the output would overwrite an input file");
  }
}

}  // namespace

OutputPlan plan_outputs(const safetensors::Checkpoint& input, const fs::path& output) {
  OutputPlan plan;
  if (output.extension() == ".safetensors") {
    OutputFile file{output, {}};
    for (const auto& source : input.files()) file.sources.push_back(source.get());
    plan.files.push_back(std::move(file));
  } else {
    std::error_code error;
    if (fs::exists(output, error) && !fs::is_directory(output, error))
      throw safetensors::Error(output.string() +
                               ": exists and is not a folder (name a .safetensors file or a folder)");
    if (!fs::exists(output, error)) plan.folder_to_create = output;
    std::set<fs::path> names;
    for (const auto& source : input.files()) {
      const fs::path name = source->path().filename();
      if (!names.insert(name).second)
        throw safetensors::Error("two input files are named " + name.string() +
                                 "; the output folder cannot hold both");
      plan.files.push_back(OutputFile{output / name, {source.get()}});
    }
    if (input.is_sharded()) plan.index_path = output / "model.safetensors.index.json";
    plan.config_path = output / "config.json";
  }
  refuse_overwriting_inputs(input, plan);
  return plan;
}

}  // namespace moeq::cli
