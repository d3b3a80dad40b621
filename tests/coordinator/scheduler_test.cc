// The coordinator's scheduler without processes: admission by free blocks, chunked prefill under
// the token budget, preemption by recompute, freeing on finish and cancel.
#include "coordinator/scheduler.h"

#include <map>

#include "gtest/gtest.h"

namespace strata::coordinator {
namespace {

std::unique_ptr<Sequence> Seq(uint64_t id, int prompt, int max_new) {
  auto s = std::make_unique<Sequence>();
  s->id = id;
  s->tokens.assign(prompt, 7);
  s->prompt_len = prompt;
  s->limit = prompt + max_new;
  return s;
}

// Runs the scheduler to completion like the serving loop does (every sampled sequence gets a
// token; a sequence at its limit finishes). Returns the number of steps; checks invariants.
int RunToCompletion(Scheduler* s, std::map<uint64_t, int>* generated, int max_steps = 10000) {
  std::vector<ScheduledSeq> step;
  int steps = 0;
  for (; steps < max_steps; ++steps) {
    s->Schedule(&step);
    if (step.empty()) break;
    int tokens = 0;
    for (const ScheduledSeq& q : step) {
      tokens += q.n_tokens;
      EXPECT_EQ(q.start, q.seq->n_cached);
      EXPECT_GE(static_cast<int64_t>(q.seq->blocks.size()) * s->config().block_size, q.start + q.n_tokens);
    }
    EXPECT_LE(tokens, s->config().max_batch_tokens);
    s->Committed(step);
    std::vector<uint64_t> done;
    for (const ScheduledSeq& q : step) {
      if (!q.sample) continue;
      q.seq->tokens.push_back(1);
      ++(*generated)[q.seq->id];
      if (static_cast<int>(q.seq->tokens.size()) >= q.seq->limit) done.push_back(q.seq->id);
    }
    for (uint64_t id : done) EXPECT_TRUE(s->Remove(id));
  }
  return steps;
}

TEST(Scheduler, ChunkedPrefillThenDecodeWithinBudget) {
  Scheduler s({/*block_size=*/4, /*n_blocks=*/64, /*max_batch_tokens=*/8, /*max_running=*/4, /*max_waiting=*/8});
  ASSERT_TRUE(s.Add(Seq(1, 20, 3)).ok());
  std::vector<ScheduledSeq> step;
  s.Schedule(&step);
  ASSERT_EQ(step.size(), 1u);
  EXPECT_EQ(step[0].n_tokens, 8);  // a prefill chunk the size of the budget
  EXPECT_FALSE(step[0].sample);
  s.Committed(step);
  ASSERT_TRUE(s.Add(Seq(2, 2, 3)).ok());
  s.Schedule(&step);  // the new short prompt joins while the long one keeps prefilling
  int total = 0;
  for (auto& q : step) total += q.n_tokens;
  EXPECT_EQ(total, 8);
  EXPECT_EQ(step.size(), 2u);
  std::map<uint64_t, int> gen;
  s.Committed(step);
  for (auto& q : step)
    if (q.sample) q.seq->tokens.push_back(1), ++gen[q.seq->id];
  RunToCompletion(&s, &gen);
  EXPECT_EQ(gen[1], 3);
  EXPECT_EQ(gen[2], 3);
  EXPECT_EQ(s.free_blocks(), s.total_blocks());
}

TEST(Scheduler, AdmitsByFreeBlocksAndPreemptsNewestWhenFull) {
  // 10 blocks of 4 tokens: three sequences of 8-token prompts fit (2 blocks each), but growing to
  // 16 tokens each needs 12 blocks, so someone must be preempted and recomputed later.
  Scheduler s({4, 10, 64, 8, 8});
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(s.Add(Seq(id, 8, 8)).ok());
  std::map<uint64_t, int> gen;
  RunToCompletion(&s, &gen);
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(gen[id], 8) << "sequence " << id;
  EXPECT_GT(s.preemptions(), 0u);
  EXPECT_EQ(s.free_blocks(), 10);
  EXPECT_EQ(s.n_running() + s.n_waiting(), 0);
}

TEST(Scheduler, RespectsMaxRunning) {
  Scheduler s({4, 100, 64, 2, 8});
  for (uint64_t id = 1; id <= 5; ++id) ASSERT_TRUE(s.Add(Seq(id, 3, 2)).ok());
  std::vector<ScheduledSeq> step;
  s.Schedule(&step);
  EXPECT_EQ(step.size(), 2u);
  EXPECT_EQ(s.n_running(), 2);
  EXPECT_EQ(s.n_waiting(), 3);
}

TEST(Scheduler, QueueLimitAndOversizedRequests) {
  Scheduler s({4, 8, 64, 1, 2});
  ASSERT_TRUE(s.Add(Seq(1, 4, 4)).ok());
  ASSERT_TRUE(s.Add(Seq(2, 4, 4)).ok());
  const absl::Status full = s.Add(Seq(3, 4, 4));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("max_waiting 2"), std::string::npos) << full.message();
  const absl::Status huge = s.Add(Seq(4, 30, 10));
  EXPECT_EQ(huge.code(), absl::StatusCode::kInvalidArgument);
}

TEST(Scheduler, RemoveFreesBlocksAnywhere) {
  Scheduler s({4, 16, 64, 1, 4});
  ASSERT_TRUE(s.Add(Seq(1, 10, 4)).ok());
  ASSERT_TRUE(s.Add(Seq(2, 10, 4)).ok());
  std::vector<ScheduledSeq> step;
  s.Schedule(&step);
  s.Committed(step);
  EXPECT_LT(s.free_blocks(), 16);
  EXPECT_TRUE(s.Remove(2));  // waiting
  EXPECT_TRUE(s.Remove(1));  // running
  EXPECT_FALSE(s.Remove(1));
  EXPECT_EQ(s.free_blocks(), 16);
}

TEST(BlockAllocator, AllOrNothingAndReuse) {
  BlockAllocator a(4);
  std::vector<int32_t> t1, t2;
  EXPECT_TRUE(a.Allocate(3, &t1));
  EXPECT_FALSE(a.Allocate(2, &t2));
  EXPECT_TRUE(t2.empty());
  EXPECT_EQ(a.n_free(), 1);
  a.Free(&t1);
  EXPECT_TRUE(t1.empty());
  EXPECT_EQ(a.n_free(), 4);
  EXPECT_TRUE(a.Allocate(4, &t2));
  std::sort(t2.begin(), t2.end());
  EXPECT_EQ(t2, (std::vector<int32_t>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace strata::coordinator
