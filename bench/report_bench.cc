// report.html at scale (issue 13's target: 2,000 trials x 100 epochs under 5 MB and under 3 s to
// first paint in headless Chromium). Plays a synthetic experiment (4 parameters, ASHA-like: a
// third of the trials stop at each rung 1, 3, 9, 27, 81; the rest reach max_t; 16 slots) through
// the ReportModel as the tuner's callbacks would, then writes the report.
//   tune-bench-report OUT.html [--trials 2000] [--epochs 100] [--all-epochs]
// --all-epochs: every trial runs every epoch (no pruning: the largest file).
// Prints the model's time per report, the snapshot and rendering time and the file's size; time
// the page with bench/report_paint.mjs OUT.html.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "core/clock.h"
#include "reporters/report_html.h"
#include "reporters/report_model.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tune-bench-report OUT.html [--trials N] [--epochs N] [--all-epochs]\n");
    return 2;
  }
  int trials = 2000, epochs = 100;
  bool all_epochs = false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--trials") && i + 1 < argc) trials = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--all-epochs")) all_epochs = true;
  }
  using tune::ImportanceParam;
  tune::ReportOptions options;
  options.time_attr = "epoch";
  auto param = [](const char* name, ImportanceParam::Kind kind, double low, double high, bool log,
                  std::vector<tune::Json> choices = {}) {
    tune::ReportParam p;
    p.domain = {name, kind, low, high, kind == ImportanceParam::Kind::kInt ? 1.0 : 0.0, log,
                static_cast<int>(choices.size())};
    p.pointer = tune::Json::json_pointer(std::string("/") + name);
    p.choices = std::move(choices);
    return p;
  };
  options.params = {param("lr", ImportanceParam::Kind::kFloat, 1e-4, 1e-1, true),
                    param("dropout", ImportanceParam::Kind::kFloat, 0, 0.5, false),
                    param("layers", ImportanceParam::Kind::kInt, 1, 8, false),
                    param("optimizer", ImportanceParam::Kind::kCategorical, 0, 0, false,
                          {"sgd", "adam", "adamw"})};
  tune::FakeClock clock;
  auto model = std::make_shared<tune::ReportModel>(options, clock);
  tune::ExperimentView view;
  view.name = "report_bench";
  view.metric = "val_acc";
  view.mode = tune::Mode::kMax;
  view.now_s = clock.Now();
  view.scheduler_description =
      "Using AsyncHyperBand: num_stopped=0\nBracket: Iter 81.000: None | Iter 27.000: None | "
      "Iter 9.000: None | Iter 3.000: None | Iter 1.000: None";
  view.milestones = {1, 3, 9, 27, 81};
  model->OnExperimentStart(view);

  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> u(0, 1);
  const int slots = 16;
  std::int64_t reports = 0;
  auto begin = std::chrono::steady_clock::now();
  // Trials run in waves of `slots`, each report 1 s of the fake clock.
  for (int first = 0; first < trials; first += slots) {
    int last = std::min(trials, first + slots);
    std::vector<tune::Trial> wave;
    std::vector<int> stop_at;
    for (int t = first; t < last; ++t) {
      tune::Trial trial;
      char id[32];
      std::snprintf(id, sizeof id, "t_%05d", t);
      trial.id = id;
      const char* optimizers[] = {"sgd", "adam", "adamw"};
      trial.params = {{"lr", std::pow(10, -4 + 3 * u(rng))}, {"dropout", 0.5 * u(rng)},
                      {"layers", 1 + static_cast<int>(8 * u(rng)) % 8},
                      {"optimizer", optimizers[static_cast<int>(3 * u(rng)) % 3]}};
      trial.status = tune::TrialStatus::kRunning;
      model->OnTrialStart(trial);
      int stop = epochs;
      if (!all_epochs) {
        for (int rung : {1, 3, 9, 27, 81}) {
          if (rung < epochs && u(rng) < 1.0 / 3) {
            stop = rung;
            break;
          }
        }
      }
      wave.push_back(std::move(trial));
      stop_at.push_back(stop);
    }
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      clock.Advance(1.0 / static_cast<double>(wave.size()));
      for (std::size_t i = 0; i < wave.size(); ++i) {
        if (epoch > stop_at[i]) continue;
        tune::Trial& trial = wave[i];
        double lr = trial.params["lr"].get<double>();
        double quality = 0.95 - 0.1 * std::fabs(std::log10(lr) + 2.5) - 0.1 * trial.params["dropout"].get<double>();
        tune::Result result;
        result.training_iteration = epoch;
        result.metrics = {{"epoch", epoch}, {"val_acc", quality * (1 - std::exp(-epoch / 15.0)) + 0.01 * u(rng)}};
        trial.last_result = result;
        ++trial.num_results;
        model->OnTrialResult(trial, result);
        ++reports;
        if (epoch == stop_at[i]) {
          trial.status = epoch == epochs ? tune::TrialStatus::kTerminated : tune::TrialStatus::kStopped;
          model->OnTrialEnd(trial);
        }
      }
    }
  }
  double play_s = Seconds(begin);
  view.now_s = clock.Now();
  view.elapsed_s = view.now_s - 1000;
  begin = std::chrono::steady_clock::now();
  model->OnExperimentEnd(view);
  double end_s = Seconds(begin);
  begin = std::chrono::steady_clock::now();
  tune::Json snapshot = model->Snapshot();
  double snapshot_s = Seconds(begin);
  begin = std::chrono::steady_clock::now();
  std::string html = tune::RenderReportHtml(snapshot, false);
  double render_s = Seconds(begin);
  std::ofstream(argv[1], std::ios::binary) << html;
  std::printf("%d trials, %lld reports: model %.2f us/report; at the end (importance) %.1f ms; "
              "snapshot %.1f ms; page %.1f ms; report.html %.2f MB\n",
              trials, static_cast<long long>(reports), 1e6 * play_s / static_cast<double>(reports),
              1e3 * end_s, 1e3 * snapshot_s, 1e3 * render_s, static_cast<double>(html.size()) / 1e6);
  return 0;
}
