// report.html: one self-contained page (the charting library, the page's script and the data
// inline; it loads nothing from the network) with the views of reporters/report_model.h, and
// the callback that writes it into the experiment directory.
//
// Example:
//   auto model = std::make_shared<ReportModel>(options, clock);
//   callbacks.push_back(model);                       // first: it must see events before
//   callbacks.push_back(std::make_shared<ReportHtmlWriter>(model, experiment_dir));
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "reporters/callback.h"
#include "reporters/report_model.h"

namespace tune {

// The page around `data` (a ReportModel snapshot, or null for a page that waits for its data).
// `live`: the page connects to "events" (Server-Sent Events, the dashboard's) for updates.
std::string RenderReportHtml(const Json& data, bool live);
// The same for a snapshot already serialised (ReportModel::SnapshotText).
std::string RenderReportHtmlFromText(std::string_view data_json, bool live);
// The same page handed to `out` piece by piece, `data` writing the snapshot's JSON text into the
// sink it is given (ReportModel::WriteSnapshot): no piece is the whole page or the whole data.
void WriteReportHtml(const std::function<void(std::string_view)>& out,
                     const std::function<void(const std::function<void(std::string_view)>&)>& data,
                     bool live);

// Writes <dir>/report.html through a temporary file and a rename (readers never see half of
// it): at the end, and during the run when the model changed, at most every interval_s, or less
// often when writing takes long (at most 5 % of the time goes into it).
class ReportHtmlWriter : public Callback {
 public:
  ReportHtmlWriter(std::shared_ptr<ReportModel> model, std::filesystem::path dir,
                   double interval_s = 5);
  void OnTick(const ExperimentView& view) override;
  void OnExperimentEnd(const ExperimentView& view) override;

 private:
  void Write();
  std::shared_ptr<ReportModel> model_;
  std::filesystem::path dir_;
  double interval_s_;
  double next_s_ = -1e300;
  std::uint64_t written_version_ = 0;
};

}  // namespace tune
