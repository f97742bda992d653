#include "reporters/report_html.h"

#include <chrono>
#include <string_view>

#include "reporters/reporters.h"

namespace tune {

// reporters/report_assets.cc.in (generated): the embedded files.
std::string_view ReportEchartsJs();
std::string_view ReportPageTemplate();
std::string_view ReportScriptJs();

namespace {

// JSON inside <script type="application/json">: "</" and "<!--" must not appear (the HTML
// parser would end the script); JSON lets "\/" stand for "/" inside strings, where they can only
// occur.
std::string ScriptSafeJson(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 16);
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '<' && i + 1 < json.size() && (json[i + 1] == '/' || json[i + 1] == '!')) {
      out += "\\u003c";
    } else {
      out += json[i];
    }
  }
  return out;
}

}  // namespace

std::string RenderReportHtml(const Json& data, bool live) {
  return RenderReportHtmlFromText(data.dump(-1, ' ', false, Json::error_handler_t::replace), live);
}

std::string RenderReportHtmlFromText(std::string_view data_json, bool live) {
  const std::string data_text = ScriptSafeJson(data_json);
  const std::pair<std::string_view, std::string_view> fills[] = {
      {"/*TUNE_ECHARTS*/", ReportEchartsJs()},
      {"/*TUNE_DATA*/", data_text},
      {"/*TUNE_LIVE*/", live ? "true" : "false"},
      {"/*TUNE_REPORT_JS*/", ReportScriptJs()},
  };
  std::string_view page = ReportPageTemplate();
  std::string out;
  out.reserve(page.size() + ReportEchartsJs().size() + data_text.size() + ReportScriptJs().size());
  std::size_t at = 0;
  // The placeholders appear in the template in this order, once each; only the template is
  // searched (never what was filled in).
  for (const auto& [placeholder, text] : fills) {
    std::size_t found = page.find(placeholder, at);
    if (found == std::string_view::npos) continue;
    out.append(page.substr(at, found - at));
    out.append(text);
    at = found + placeholder.size();
  }
  out.append(page.substr(at));
  return out;
}

ReportHtmlWriter::ReportHtmlWriter(std::shared_ptr<ReportModel> model, std::filesystem::path dir,
                                   double interval_s)
    : model_(std::move(model)), dir_(std::move(dir)), interval_s_(interval_s) {}

void ReportHtmlWriter::OnTick(const ExperimentView& view) {
  if (view.now_s < next_s_ || model_->version() == written_version_) return;
  auto begin = std::chrono::steady_clock::now();
  Write();
  double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  next_s_ = view.now_s + std::max(interval_s_, 20 * took_s);
}

void ReportHtmlWriter::OnExperimentEnd(const ExperimentView& view) {
  (void)view;
  Write();
}

void ReportHtmlWriter::Write() {
  written_version_ = model_->version();
  if (dir_.empty()) return;
  std::filesystem::create_directories(dir_);
  WriteFileAtomically(dir_ / "report.html", RenderReportHtmlFromText(model_->SnapshotText(), /*live=*/false));
}

}  // namespace tune
