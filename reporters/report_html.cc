#include "reporters/report_html.h"

#include <chrono>
#include <utility>
#include <string_view>

#include "reporters/reporters.h"

namespace tune {

// reporters/assets.cc.in (generated): the embedded files.
std::string_view ReportEchartsJs();
std::string_view ReportPageTemplate();
std::string_view ReportScriptJs();

namespace {

// JSON inside <script type="application/json">: "</" and "<!--" must not appear (the HTML
// parser would end the script); JSON lets "\/" stand for "/" inside strings, where they can only
// occur. A sink in front of `out`: a '<' at the end of one piece is decided by the next.
class ScriptSafeSink {
 public:
  explicit ScriptSafeSink(const TextSink& out) : out_(out) {}
  void operator()(std::string_view piece) {
    std::size_t run = 0;  // the start of what is not written yet
    for (std::size_t i = 0; i < piece.size(); ++i) {
      if (pending_) {
        pending_ = false;
        out_(piece[i] == '/' || piece[i] == '!' ? "\\u003c" : "<");
      }
      if (piece[i] == '<') {
        if (i > run) out_(piece.substr(run, i - run));
        run = i + 1;
        pending_ = true;
      }
    }
    if (run < piece.size()) out_(piece.substr(run));
  }
  void Finish() {
    if (pending_) out_("<");
    pending_ = false;
  }

 private:
  const TextSink& out_;
  bool pending_ = false;  // a '<' held back
};

}  // namespace

std::string RenderReportHtml(const Json& data, bool live) {
  return RenderReportHtmlFromText(data.dump(-1, ' ', false, Json::error_handler_t::replace), live);
}

std::string RenderReportHtmlFromText(std::string_view data_json, bool live) {
  std::string out;
  out.reserve(ReportPageTemplate().size() + ReportEchartsJs().size() + data_json.size() +
              ReportScriptJs().size());
  WriteReportHtml([&out](std::string_view piece) { out.append(piece); },
                  [data_json](const TextSink& sink) { sink(data_json); }, live);
  return out;
}

void WriteReportHtml(const TextSink& out, const std::function<void(const TextSink&)>& data,
                     bool live) {
  std::string_view page = ReportPageTemplate();
  std::size_t at = 0;
  // The placeholders appear in the template in this order, once each; only the template is
  // searched (never what was filled in).
  const auto write_data = [&out, &data] {
    ScriptSafeSink safe(out);
    data([&safe](std::string_view piece) { safe(piece); });
    safe.Finish();
  };
  const std::pair<std::string_view, std::function<void()>> fills[] = {
      {"/*TUNE_ECHARTS*/", [&out] { out(ReportEchartsJs()); }},
      {"/*TUNE_DATA*/", write_data},
      {"/*TUNE_LIVE*/", [&out, live] { out(live ? "true" : "false"); }},
      {"/*TUNE_REPORT_JS*/", [&out] { out(ReportScriptJs()); }},
  };
  for (const auto& [placeholder, fill] : fills) {
    std::size_t found = page.find(placeholder, at);
    if (found == std::string_view::npos) continue;
    out(page.substr(at, found - at));
    fill();
    at = found + placeholder.size();
  }
  out(page.substr(at));
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
  // Streamed: the page is never one string (17 MB at 90,000 trials), nor its data.
  WriteFileAtomically(dir_ / "report.html", [this](const TextSink& out) {
    WriteReportHtml(out, [this](const TextSink& data) { model_->WriteSnapshot(data); },
                    /*live=*/false);
  });
}

}  // namespace tune
