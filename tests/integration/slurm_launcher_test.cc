// The Slurm launcher's pure parts (no cluster needed): the srun and sbatch command lines, Slurm's
// count lists, what makes an exit the cluster's fault, the spec's "launcher" key and the
// trial_placed journal event. The launcher against a real cluster: slurm_cluster_test.py.
#include "tuner/slurm_launcher.h"

#include <boost/asio/io_context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tuner/events.h"
#include "tuner/spec.h"

namespace tune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SlurmCountsTest, ExpandsRepeats) {
  EXPECT_THAT(ExpandSlurmCounts("2(x3),1", "x"), ElementsAre(2, 2, 2, 1));
  EXPECT_THAT(ExpandSlurmCounts("8", "x"), ElementsAre(8));
  try {
    ExpandSlurmCounts("two", "SLURM_JOB_CPUS_PER_NODE");
    FAIL() << "accepted a malformed list";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("SLURM_JOB_CPUS_PER_NODE"));
  }
}

TEST(SlurmLostReasonTest, NodeFailuresAndPreemptionAreTheClustersFault) {
  std::set<std::string> nodes;
  EXPECT_EQ(SlurmLostReason("srun: error: Node failure on n2\n", nodes), "node failure on n2");
  EXPECT_THAT(nodes, ElementsAre("n2"));
  nodes.clear();
  EXPECT_EQ(SlurmLostReason("slurmstepd: error: *** STEP 5.0 ON n1 CANCELLED AT 2026-11-29T00:18:16 "
                            "DUE TO PREEMPTION ***\n",
                            nodes),
            "preempted");
  EXPECT_EQ(SlurmLostReason("JobId=7 JobName=t JobState=NODE_FAIL Reason=NodeDown", nodes),
            "node failure");
  // A trial's own failure, and a job's ordinary description, are not.
  EXPECT_EQ(SlurmLostReason("srun: error: n1: task 0: Exited with exit code 3\n", nodes), "");
  EXPECT_EQ(SlurmLostReason("JobId=7 JobState=FAILED PreemptEligibleTime=None PreemptTime=None",
                            nodes),
            "");
  EXPECT_TRUE(nodes.empty());
}

TEST(SlurmFirstFailedTaskTest, NamesTheRankThatFailedFirst) {
  const std::string log =
      "srun: error: n2: task 1: Exited with exit code 3\n"
      "srun: launch/slurm: _step_signal: Terminating StepId=4.0\n"
      "srun: error: n1: task 0: Terminated\n";
  EXPECT_EQ(SlurmFirstFailedTask(log), std::make_optional(std::make_pair(1, 3)));
  EXPECT_EQ(SlurmFirstFailedTask("srun: error: n1: task 0: Killed\n"), std::nullopt);
}

TEST(SacctTest, ReadsTheRecordOfTheStepAsked) {
  // `sacct -n -P -j 1 -o JobID,State,ExitCode,NodeList` after a step killed by SIGKILL, a step
  // that exited 3, one still running, and a step whose --no-kill allocation lost n2 under it.
  const std::string output =
      "1|RUNNING|0:0|n[1-2]\n"
      "1.1|CANCELLED by 0|0:9|n1\n"
      "1.3|FAILED|3:0|n1\n"
      "1.4|RUNNING|0:0|n2\n"
      "1.5|RESIZING|0:0|n2\n";
  std::optional<SacctRecord> killed = ParseSacct(output, "1.1");
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->state, "CANCELLED");
  EXPECT_EQ(killed->signal, 9);
  EXPECT_EQ(killed->nodes, "n1");
  EXPECT_TRUE(killed->final());
  EXPECT_FALSE(killed->lost());
  EXPECT_EQ(ParseSacct(output, "1.3")->code, 3);
  EXPECT_FALSE(ParseSacct(output, "1.4")->final());  // slurmdbd not told yet: ask again
  EXPECT_TRUE(ParseSacct(output, "1.5")->lost());
  EXPECT_FALSE(ParseSacct(output, "1")->final());
  EXPECT_FALSE(ParseSacct(output, "1.2"));
  EXPECT_FALSE(ParseSacct("sacct: error: Problem talking to the database\n", "1.1"));
  // A job's last record wins (a requeued job has several).
  std::optional<SacctRecord> job = ParseSacct("7|NODE_FAIL|0:0|n2\n7|PREEMPTED|0:15|n1\n", "7");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, "PREEMPTED");
  EXPECT_TRUE(job->lost());
  EXPECT_TRUE(ParseSacct("7|NODE_FAIL|0:0|n2\n", "7")->lost());
}

TEST(SacctTest, AnSbatchJobThatRanOutOfMemoryEndedWithItsStep) {
  // sacct -j 2 of a trial's job (--mem=64M) whose step 0 the OOM killer ended: the job and its
  // batch step only FAILED with srun's exit 1; the step's record is the one that says why.
  const std::string output =
      "2|FAILED|1:0|n1\n"
      "2.batch|FAILED|1:0|n1\n"
      "2.0|OUT_OF_MEMORY|0:125|n1\n";
  std::optional<SacctRecord> end = SacctEnd(output, "2");
  ASSERT_TRUE(end);
  EXPECT_EQ(end->id, "2.0");
  EXPECT_EQ(end->state, "OUT_OF_MEMORY");
  EXPECT_EQ(ParseSacct(output, "2")->id, "2");
  // Otherwise the job's own record: a job that failed by itself, or one past its time limit.
  EXPECT_EQ(SacctEnd("3|FAILED|1:0|n1\n3.0|FAILED|1:0|n1\n", "3")->id, "3");
  EXPECT_EQ(SacctEnd("4|TIMEOUT|0:0|n2\n4.0|CANCELLED|0:15|n2\n", "4")->state, "TIMEOUT");
  // A step asked about is that step, and a job still running is not final yet (asked again).
  EXPECT_EQ(SacctEnd(output, "2.0")->id, "2.0");
  EXPECT_EQ(SacctEnd("5|RUNNING|0:0|n1\n5.0|OUT_OF_MEMORY|0:125|n1\n", "5")->state, "RUNNING");
}

LaunchRequest Rank0() {
  LaunchRequest request;
  request.argv = {"/opt/train", "it's"};
  request.env = {{"TUNE_TRIAL_ID", "t_00003"}, {"TUNE_TRIAL_DIR", "/shared/exp/t_00003"}};
  return request;
}

SlurmLauncher::Options Options(const std::string& allocation, TrialResources resources) {
  SlurmLauncher::Options options;
  options.resources = resources;
  options.rank_program = "/opt/tune/tune-slurm-rank";
  options.allocation = allocation;
  options.tuner_node = "";
  return options;
}

TEST(SlurmLauncherTest, InsideAnAllocationATrialIsAJobStep) {
  boost::asio::io_context io;
  SlurmLauncher::Options options = Options("41", {/*gpu=*/2, /*cpu=*/4, /*workers=*/2});
  options.config.nodes = 2;
  options.config.time = "10:00";
  options.config.args = {"--mem-per-cpu=2G"};
  SlurmLauncher launcher(io, options);
  EXPECT_TRUE(launcher.in_allocation());
  EXPECT_THAT(launcher.CommandLine(Rank0(), {}),
              ElementsAre("srun", "--exact", "--kill-on-bad-exit=1", "--job-name=t_00003",
                          "--ntasks=2", "--cpus-per-task=2", "--nodes=2", "--ntasks-per-node=1",
                          "--gpus-per-task=1", "--time=10:00", "--mem-per-cpu=2G",
                          "/opt/tune/tune-slurm-rank", "/opt/train", "it's"));
  // A retry avoids the nodes that failed the trial.
  EXPECT_THAT(launcher.CommandLine(Rank0(), {"n2", "n5"}), testing::Contains("--exclude=n2,n5"));
  // Two GPUs per rank: each rank's model split over them (model_parallel).
  SlurmLauncher split(io, Options("41", {/*gpu=*/4, /*cpu=*/4, /*workers=*/2}));
  EXPECT_THAT(split.CommandLine(Rank0(), {}), testing::Contains("--gpus-per-task=2"));
}

TEST(SlurmLauncherTest, OneProcessTrialAsksForItsGpusAsAWhole) {
  boost::asio::io_context io;
  SlurmLauncher launcher(io, Options("41", {/*gpu=*/2, /*cpu=*/1, /*workers=*/1}));
  auto argv = launcher.CommandLine(Rank0(), {});
  EXPECT_THAT(argv, testing::Contains("--gpus=2"));
  EXPECT_THAT(argv, testing::Contains("--cpus-per-task=1"));
  EXPECT_THAT(argv, testing::Not(testing::Contains(HasSubstr("--nodes"))));
}

TEST(SlurmLauncherTest, OutsideAnAllocationATrialIsAnSbatchJob) {
  boost::asio::io_context io;
  SlurmLauncher::Options options = Options("", {/*gpu=*/0, /*cpu=*/2, /*workers=*/1});
  options.config.partition = "gpu";
  options.config.account = "lab";
  options.config.time = "1:00:00";
  SlurmLauncher launcher(io, options);
  EXPECT_FALSE(launcher.in_allocation());
  EXPECT_THAT(launcher.CommandLine(Rank0(), {}),
              ElementsAre("sbatch", "--wait", "--parsable", "--job-name=tune-t_00003",
                          "--output=/shared/exp/t_00003/slurm.log", "--open-mode=append",
                          "--no-requeue", "--partition=gpu", "--account=lab", "--time=1:00:00",
                          "--ntasks=1", "--cpus-per-task=2",
                          "--wrap=exec srun --kill-on-bad-exit=1 '/opt/tune/tune-slurm-rank' "
                          "'/opt/train' 'it'\\''s'"));
}

TEST(SlurmLauncherTest, RefusesWhatSlurmCannotGive) {
  boost::asio::io_context io;
  try {
    SlurmLauncher launcher(io, Options("41", {/*gpu=*/0.5, /*cpu=*/1, /*workers=*/1}));
    FAIL() << "accepted half a GPU";
  } catch (const SpecError& error) {
    EXPECT_THAT(error.what(), HasSubstr("resources_per_trial.gpu"));
  }
  SlurmLauncher::Options options = Options("41", {0, 1, 2});
  options.config.nodes = 3;
  EXPECT_THROW(SlurmLauncher(io, options), SpecError);
}

Json MinimalSpec() {
  return Json::parse(R"({"metric": "loss", "space": {"x": {"uniform": [0, 1]}}})");
}

TEST(SlurmSpecTest, LauncherKeyIsCheckedWithItsPath) {
  Json raw = MinimalSpec();
  EXPECT_EQ(ParseSpec(raw, ".").launcher.type, "local");
  raw["launcher"] = "slurm";
  EXPECT_EQ(ParseSpec(raw, ".").launcher.type, "slurm");
  raw["launcher"] = Json::parse(
      R"({"type": "slurm", "partition": "gpu", "args": ["--qos=high"], "nodes": 2,
          "report_host": "10.0.0.1"})");
  LauncherConfig config = ParseSpec(raw, ".").launcher;
  EXPECT_EQ(config.partition, "gpu");
  EXPECT_THAT(config.args, ElementsAre("--qos=high"));
  EXPECT_EQ(config.nodes, 2);
  EXPECT_EQ(config.report_host, "10.0.0.1");

  auto error_of = [](const char* launcher) {
    Json bad = MinimalSpec();
    bad["launcher"] = Json::parse(launcher);
    try {
      ParseSpec(bad, ".");
    } catch (const SpecError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of(R"({"type": "pbs"})"), HasSubstr("launcher.type"));
  EXPECT_THAT(error_of(R"({"type": "slurm", "partion": "gpu"})"), HasSubstr("launcher.partion"));
  EXPECT_THAT(error_of(R"({"type": "slurm", "partion": "gpu"})"), HasSubstr("partition"));
  EXPECT_THAT(error_of(R"({"args": [1]})"), HasSubstr("launcher.args"));
  EXPECT_THAT(error_of(R"({"nodes": -1})"), HasSubstr("launcher.nodes"));
  EXPECT_THAT(error_of("3"), HasSubstr("launcher"));
}

TEST(SlurmEventsTest, TrialPlacedRoundTrips) {
  const std::string line = Encode(TrialPlaced{"t_00002", "41.7", "n[1-2]"});
  const JournalEvent event = DecodeEvent(Json::parse(line), 1);
  const auto* placed = std::get_if<TrialPlaced>(&event);
  ASSERT_NE(placed, nullptr) << line;
  EXPECT_EQ(placed->job, "41.7");
  EXPECT_EQ(placed->location, "n[1-2]");
  EXPECT_EQ(TrialIdOf(event), "t_00002");
  EXPECT_THROW(DecodeEvent(Json::parse(R"({"event": "trial_placed", "trial_id": "t"})"), 4),
               std::runtime_error);
}

}  // namespace
}  // namespace tune
