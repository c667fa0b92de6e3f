// The engine thread: one long-lived thread per Engine that owns generation and
// batches every running sequence of every request into one decode step (continuous
// batching, as in vLLM / TGI).
//
//   submit()  (any thread)   request -> FIFO queue; returns at once
//   loop      (engine thread, sleeps on a condition variable when there is no work):
//     1. queued requests that were cancelled finish (Aborted) without running;
//     2. admission, in FIFO order: the head request is admitted when the free KV
//        blocks cover all its sequences (prompt + maxNewTokens − 1 tokens each,
//        reserved all or nothing); a request larger than the whole cache fails at
//        once with OutOfMemory and the numbers; otherwise the queue waits (nothing
//        behind the head overtakes it) until running sequences give blocks back;
//     3. cancelled admitted / running requests finish (Aborted) and free their pages;
//     4. one prefill step: up to prefillChunkTokens prompt tokens of the admitted requests
//        (FIFO; the tiles of sequences starting now through the ViT as one batch; a long
//        prompt continues in the next step), in one forward; a sequence whose prompt is in
//        samples its first token, and a request whose prompts are all in starts decoding;
//     5. one decode step over all unfinished sequences of all running requests
//        (one token each, each at its own position); tokens go to each request's
//        onToken in order; a sequence that ends (eos / maxNewTokens) frees its pages
//        at once; a request whose sequences have all ended gets its onDone.
//   shutdown() (any thread but the engine's): cancels everything — each request still
//   gets exactly one onDone, with Aborted results — and joins the thread.
//
// Per-sequence state (its PRNG stream seeded with the request's seed, its generated
// tokens for the repetition penalty, its RoPE positions) lives with the sequence, and
// every row of a step is computed the same way whatever else is in the batch, so a
// request's tokens do not depend on what runs beside it.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cpu/thread_pool.h"
#include "runtime/engine.h"

namespace ivl {

// One submitted request, shared by the submitter (cancel handle) and the engine thread.
struct Submission {
  GenerateRequest request;
  TokenCallback onToken;
  DoneCallback onDone;
  std::atomic<bool> cancel{false};
  bool retired = false;  // onDone has returned (guarded by the scheduler's mutex)
  // Vision ahead (EngineOptions::visionAhead; guarded by the scheduler's mutex): whether the
  // vision thread still owes this request's tiles (Queued, Encoding), has them (Ready: each
  // sequence's rows of all its tiles on the vision device, undefined without tiles), or left
  // them to the engine thread's prefill step (None: not asked, declined, or failed).
  enum class Ahead { None, Queued, Encoding, Ready };
  Ahead ahead = Ahead::None;
  std::vector<Tensor> aheadRows;
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
};

struct SchedulerStats {
  int64_t kvBlocks = 0;
  int64_t kvFreeBlocks = 0;
  int64_t queuedRequests = 0;     // waiting for admission
  int64_t runningRequests = 0;    // admitted, not finished
  int64_t runningSequences = 0;   // unfinished sequences of the running requests
  int64_t maxBatchSequences = 0;  // the most sequences one decode step has carried (since load)
  int64_t maxBatchRequests = 0;   // the most distinct requests one decode step has carried
  int64_t decodeSteps = 0;
  int64_t prefillSteps = 0;      // forwards over prompt chunks
  int64_t mixedSteps = 0;        // of those, the ones that also carried a decode step
  int64_t cachedBlocks = 0;      // pages kept by finished sequences for prefix reuse (counted as free)
  int64_t prefixHitTokens = 0;   // prompt tokens taken from cached prefixes instead of prefilled
  int64_t vitTiles = 0;          // tiles run through the ViT by generation requests
  int64_t visionAheadTiles = 0;  // of those, the ones the vision thread ran ahead of their prefill
  int64_t completedRequests = 0;
  // Sums over requests admitted (queue wait) and over sequences that produced a first token
  // (submission to first token), in ms; firstTokens counts the latter.
  double queueWaitMs = 0;
  int64_t admittedRequests = 0;  // the queue wait's count
  double firstTokenWaitMs = 0;
  int64_t firstTokens = 0;
  // Where decode steps spend host wall time, cumulative ms: the engine's step (forward, greedy
  // argmax and logits download, waited for), the host sampler over sampled rows, and token
  // delivery (callbacks, stop rules, freeing pages).
  double decodeForwardMs = 0;
  double decodeSampleMs = 0;
  double decodeEmitMs = 0;
};

class Scheduler {
 public:
  explicit Scheduler(Engine& engine);  // starts the engine thread
  ~Scheduler();                        // shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  std::shared_ptr<Submission> submit(GenerateRequest req, TokenCallback onToken, DoneCallback onDone);
  void cancel(const std::shared_ptr<Submission>& s);
  void waitRetired(const std::shared_ptr<Submission>& s);
  void shutdown();
  SchedulerStats stats() const;
  // Tests only: the engine thread runs at most `iterations` more loop iterations that have
  // work, then waits with it (-1, the default: no limit), so a test can arrange which
  // requests share a step. heldForTesting(): it is waiting so now.
  void holdForTesting(int64_t iterations);
  bool heldForTesting() const;

 private:
  struct Running;  // an admitted request and its sequences' state (engine thread only)
  // A finished sequence's KV kept for reuse (multi-round chat): the ids whose K/V its pages
  // hold and a hash per tile of its images (image tokens are placeholders: equal ids with
  // other pixels must not match).
  struct CachedPrefix {
    SequenceKv kv;
    std::vector<int32_t> ids;
    std::vector<uint64_t> tileHash;
    uint64_t lastUse = 0;
    bool claimed = false;  // taken by a request admitted in this loop iteration
  };
  struct PrefixMatch {
    CachedPrefix* entry = nullptr;
    int64_t keep = 0;       // tokens reused
    int64_t tilesKept = 0;  // tiles whose rows are among them
  };
  PrefixMatch findPrefix(const SequenceInput& q);
  void sequenceEnded(Running& r, size_t b);
  int64_t cachedBlocks() const;
  // Drops least recently used unclaimed prefixes until `blocks` pages are free.
  void evictFor(int64_t blocks);
  void admit(const std::shared_ptr<Submission>& s, const std::vector<PrefixMatch>& matches);

  void loop();
  // What a prefill step runs: up to the chunk budget of prompt tokens in FIFO order, and the
  // sequences whose tiles go through the ViT in it.
  struct PrefillPlan {
    std::vector<PrefillPart> parts;
    std::vector<std::pair<Running*, size_t>> who;  // request and sequence of each part
    std::vector<TileRange> starting;
    std::vector<std::pair<Running*, size_t>> startingWho;
    std::vector<Tensor> startingAhead;  // rows encoded ahead (vision device), or undefined: encode now
  };
  PrefillPlan planPrefill();
  // Vision ahead: the vision thread's loop (batches of submitted requests' tiles through the
  // ViT on the vision device while the engine thread steps), and whether r's prefill still
  // waits for it (mu_ held).
  void visionLoop();
  bool waitsForVision(const Running& r) const;
  // The engine thread has nothing to step but prefills whose tiles the vision thread still owes:
  // waits until that changes (or anything else happens). False: there was something to do.
  bool waitForVision();
  // Erases cache_[i] (and, with vision ahead, its first tile from cachedFirstTiles_).
  void dropCached(size_t i);
  // The step's new tiles through the ViT (tiles repeated within the step once), and every
  // part's image rows.
  void encodeStarting(PrefillPlan& plan, const std::atomic<bool>* interrupt);
  void prefillStep();
  // After a prefill forward: prompt progress, first tokens, requests joining the decode batch.
  void afterPrefill(const PrefillPlan& plan, std::vector<std::vector<float>>& scores);
  // The running sequences' next decode rows (cancelled requests sit out).
  void collectDecode(DecodeRows& rows, std::vector<std::pair<Running*, int64_t>>& who);
  void decodeStep();
  // After a decode forward (step_ holds its choices): sampling, tokens, finished requests.
  void afterDecode(const std::vector<std::pair<Running*, int64_t>>& who, std::chrono::steady_clock::time_point t0,
                   std::chrono::steady_clock::time_point t1);
  // A prefill step with the running sequences' decode step inside it (EngineOptions::mixedSteps).
  // When it fails, every sequence in it goes back to where the step found it and the next
  // iteration runs the two steps apart, whose failure handling then applies.
  void mixedStep();
  bool unmixNext_ = false;
  void sampleRows(const std::vector<std::pair<Running*, int64_t>>& who);  // step_'s sampled rows
  // Out of memory in a step several requests share: the newest of them fails with the error,
  // the others' KV goes back to where the step found it, the backends' caches are released,
  // and the others run again in the next step. False (nothing done) for any other error or a
  // step of one request, which then fails as every failed step does.
  bool shedNewestForOom(std::exception_ptr error, std::vector<std::unique_ptr<Running>>& list,
                        const std::set<Running*>& inStep);
  // After a failed step: r's KV lengths back to what its pages held before the step.
  void rewindToPages(Running& r);
  // Frees r's pages, marks unfinished sequences Aborted (when aborting), calls onDone.
  void finish(Running& r, std::exception_ptr error, bool aborted);
  void retire(const std::shared_ptr<Submission>& s, std::vector<SequenceResult>&& results, std::exception_ptr error);
  void publishStats();
  void firstToken(double ms);  // a sequence's first token, ms after its request's submission

  Engine& engine_;
  mutable std::mutex mu_;
  std::condition_variable wake_;     // work arrived / cancel / stop
  std::condition_variable retired_;  // a submission retired
  std::deque<std::shared_ptr<Submission>> queue_;  // FIFO, not yet admitted
  std::set<std::shared_ptr<Submission>> live_;     // submitted, not retired
  bool stopping_ = false;
  int64_t hold_ = -1;    // holdForTesting (guarded by mu_)
  bool held_ = false;    // heldForTesting (guarded by mu_)
  std::atomic<bool> stop_{false};  // read by kernels between layers during a decode step
  std::vector<std::unique_ptr<Running>> prefilling_;  // admitted, prompts not all in (engine thread only)
  std::vector<std::unique_ptr<CachedPrefix>> cache_;  // prefix cache, engine thread only
  uint64_t useClock_ = 0;
  std::vector<std::unique_ptr<Running>> running_;     // decoding (engine thread only)
  StepOutput step_;                                // the last decode step's choices (reused: no per-step allocation)
  std::unique_ptr<cpu::ThreadPool> samplePool_;    // host sampling of many rows, made on first need
  SchedulerStats stats_;                           // guarded by mu_
  std::thread thread_;
  // Vision ahead: submitted requests with tiles, oldest first, for the vision thread; a count of
  // the events that can make a waiting prefill ready (vision done, submit, cancel); the first
  // tile's hash of each cached prefix (a request whose first tiles are cached is left to the
  // prefill step, where the prefix cache serves them). All guarded by mu_.
  std::deque<std::shared_ptr<Submission>> aheadQueue_;
  std::condition_variable visionWake_;
  uint64_t events_ = 0;
  std::unordered_multiset<uint64_t> cachedFirstTiles_;
  std::thread visionThread_;
};

}  // namespace ivl
