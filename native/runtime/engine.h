// The engine: one loaded model (weights on a backend, its KV cache) and the jobs it
// runs: ViT / image encoding and generation. Backend-neutral; the caller picks the
// backend.
//
// Generation goes through the engine thread (runtime/scheduler.h): submit() queues a
// request and returns at once; one long-lived thread per engine admits requests by
// free KV blocks, prefills them and decodes every running sequence of every request
// together, one token each per step (continuous batching). Per request:
//   1. validate (submit() does it, so bad requests throw synchronously); its KV pages
//      (prompt + maxNewTokens − 1 tokens per sequence) are reserved when it is
//      admitted, all or nothing; a request larger than the whole cache fails at once
//      with OutOfMemory and the numbers, one that only has to wait stays queued (FIFO);
//   2. prefill each sequence on its own (positions 0..L−1): token embeddings, its
//      images encoded and scattered over its <IMG_CONTEXT> rows in order, one
//      forward call, logits of the last position -> first token;
//   3. its unfinished sequences join the decode batch until eos / maxNewTokens /
//      cancel; finished and cancelled sequences give their pages back at once.
// A sequence's tokens do not depend on the rest of the batch: every row is computed
// the same way whatever the batch, RoPE tables are per sequence, and each sequence
// samples from its own PRNG stream with its own repetition history.
// Backend work (a prefill, a decode step, an encode call) runs one at a time (mutex_).
#pragma once
#include <atomic>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/backend.h"
#include "runtime/checkpoint.h"
#include "runtime/kv_cache.h"
#include "runtime/model_spec.h"
#include "runtime/sampler.h"
#include "runtime/weights.h"

namespace ivl {
class Scheduler;
struct Submission;
struct SchedulerStats;
}  // namespace ivl

namespace ivl {

struct EngineOptions {
  int64_t kvCacheTokens = 0;  // 0: kDefaultKvCacheTokens
  int64_t kvBlockSize = 16;   // tokens per page
  // Prompt tokens one prefill step runs (over all requests being admitted): a long prompt is
  // prefilled in chunks with decode steps of the running sequences between them.
  int64_t prefillChunkTokens = kDefaultPrefillChunkTokens;
  static constexpr int64_t kDefaultPrefillChunkTokens = 2048;
  // Keep finished sequences' KV pages and reuse the longest matching prefix (same ids, same
  // image pixels) for a later prompt: turn 2 of a chat skips the ViT and the history's prefill.
  // Cached pages count as free: admission evicts them (least recently used) when it needs room.
  bool prefixCache = true;
  // Run the running sequences' decode step inside each prefill step (one forward for both)
  // instead of after it: an arrival's prefill then costs no extra pass over the weights.
  bool mixedSteps = false;
  // Run the ViT of each submitted request's tiles on a thread of its own as soon as it is
  // submitted, on the vision's own logical device (the map must give the vision a device that
  // nothing else uses: withOwnVisionDevice), while the engine thread keeps stepping the running
  // requests; their prefill then takes the rows encoded ahead. A request's ViT no longer waits
  // for the step in progress, nor holds the running streams' next step.
  bool visionAhead = false;
  // Run every bf16 decoder matmul shape a decode step can meet (1..kWarmMaxRows rows) once at
  // load on backends that pick kernels per shape (tunesMatmulShapes), so the first steps at
  // each batch size after a start do not pay for it (INTERNVL_WARM_MATMULS=0 turns it off).
  bool warmMatmulShapes = true;
  bool dummyWeights = false;  // random weights of the config's shapes instead of reading `dir`
  QuantizeOptions quantize;   // int8 (W8A16) weights quantized at load; none by default
  LoadProgressFn loadProgress;  // called on the loading thread as tensors load (optional)
  DeviceMap deviceMap;          // which backend runs what (empty: everything on backend 0)
  static constexpr int64_t kDefaultKvCacheTokens = 8192;
};

struct SequenceInput {
  std::vector<int32_t> inputIds;  // [L] prompt, <IMG_CONTEXT> runs already expanded
  std::vector<float> pixels;      // [tiles, 3, S, S] this sequence's tiles in prompt order
  int64_t tiles = 0;
};

struct GenerateRequest {
  std::vector<SequenceInput> sequences;
  int64_t maxNewTokens = 0;
  std::vector<int32_t> eosTokenIds;
  SamplingParams sampling;
  bool returnPromptLogits = false;
};

enum class FinishReason { Eos, Length, Aborted };

struct SequenceResult {
  std::vector<int32_t> tokens;  // generated ids (an eos token included)
  FinishReason finish = FinishReason::Length;
  int64_t promptTokens = 0;
  std::vector<float> promptLogits;  // [V] last prompt position (when asked)
  // Engine-side timing from the request's submission to the scheduler (ms; -1: not reached):
  // until it was admitted (its KV reserved), and until this sequence's first token was chosen.
  double queueMs = -1;
  double firstTokenMs = -1;
};

// A piece of one sequence's prompt in a prefill step: tokens [begin, begin + count).
struct PrefillPart {
  const SequenceInput* input = nullptr;
  SequenceKv* kv = nullptr;  // has reserved room for the whole prompt
  int64_t begin = 0, count = 0;
  // The sequence's image embeddings on the embedding device (Engine::encodeTiles), undefined
  // without tiles: row r belongs to the sequence's (imageRowBase + r)-th <IMG_CONTEXT> token
  // (imageRowBase > 0 when a cached prefix already holds the first tiles).
  Tensor image;
  int64_t imageRowBase = 0;
};

// Tiles [firstTile, tiles) of one sequence, for Engine::encodeTiles.
struct TileRange {
  const SequenceInput* input = nullptr;
  int64_t firstTile = 0;
};

// How one row of a decode step chooses its token (both point into the running request).
struct RowSampling {
  const SamplingParams* params = nullptr;
  const std::vector<int32_t>* generated = nullptr;  // the repetition penalty's history
};

// What a decode step hands back: greedy rows their token, chosen by the backend where the
// logits are (Backend::greedyTokens); sampled rows their fp32 logits for the host sampler.
struct StepOutput {
  std::vector<int32_t> tokens;       // [A] greedy rows: the token; sampled rows: −1
  std::vector<int64_t> sampledRows;  // rows to sample on the host, ascending
  const float* scores = nullptr;     // [sampledRows.size(), V] their logits; valid until the next step
  std::vector<float> hostScores;     // their storage when the backend offers no staging memory
};

// Running sequences that take their next decode step inside a prefill step (a mixed step:
// one forward, one pass over the weights, for both): each adds its last token as one row.
struct DecodeRows {
  std::vector<int32_t> ids;
  std::vector<SequenceKv*> seqs;
  std::vector<RowSampling> sampling;
};

// Called after each chosen token, on the engine thread.
using TokenCallback = std::function<void(int64_t sequence, int32_t token)>;
// Called once per request on the engine thread: its results, or the error that ended it
// (results then empty). Cancellation is not an error: unfinished sequences finish Aborted.
using DoneCallback = std::function<void(std::vector<SequenceResult>&& results, std::exception_ptr error)>;

class Engine {
 public:
  // Opens and checks the checkpoint against spec, loads the weights onto backend and
  // allocates the KV cache. Throws ivl::Error (Config / Checkpoint / OutOfMemory).
  Engine(std::unique_ptr<Backend> backend, const std::string& dir, const ModelSpec& spec,
         const EngineOptions& options);
  // A model split across devices: backends[d] is logical device d of options.deviceMap.
  Engine(std::vector<std::unique_ptr<Backend>> backends, const std::string& dir, const ModelSpec& spec,
         const EngineOptions& options);
  ~Engine();

  const ModelSpec& spec() const { return spec_; }
  const char* backendName() const { return backends_[0]->name(); }
  // The backend's description; with a device map, each device's and the map.
  std::string backendDetail() const;
  int64_t vocabSize() const { return weights_.llm.vocab; }
  int64_t kvBlockSize() const { return kv_->blockSize(); }
  int64_t kvBlocks() const { return kv_->numBlocks(); }

  // pixels [tiles, 3, S, S] -> raw ViT output [tiles, 1+G², C].
  std::vector<float> encodeVit(const float* pixels, int64_t tiles);
  // pixels [tiles, 3, S, S] -> projected image embeddings [tiles, numImageToken, H].
  std::vector<float> encodeImages(const float* pixels, int64_t tiles);
  // Benchmarks: seconds per run of encodeImages' device work (pixel upload + ViT + projector,
  // result left on the device, as a PyTorch caller has it), and of the pixel upload alone.
  struct EncodeTimes {
    std::vector<double> encodeS, uploadS;
  };
  EncodeTimes timeEncode(const float* pixels, int64_t tiles, int reps);

  // Queues a request for the engine thread and returns at once (validate() first:
  // InvalidArg throws here; Disposed after shutdown()). onToken / onDone run on the
  // engine thread; onDone exactly once. The returned handle cancels (cancel()).
  std::shared_ptr<Submission> submit(GenerateRequest req, TokenCallback onToken, DoneCallback onDone);
  // Asks a request to stop: queued ones finish at once, running ones after the
  // current step, with FinishReason::Aborted.
  void cancel(const std::shared_ptr<Submission>& s);
  // Blocks until the engine thread has called s's onDone and will not touch s again.
  void waitRetired(const std::shared_ptr<Submission>& s);
  // Cancels every request (each still gets its onDone), then joins the engine thread.
  // Later submits throw Disposed. Idempotent; the destructor calls it.
  void shutdown();
  // Live numbers (KV blocks free, running / queued, the largest decode batch so far).
  SchedulerStats stats() const;
  // Device memory per device the model uses (empty on the CPU backend). Thread-safe.
  std::vector<DeviceMemory> deviceMemory() const;
  // Gives every device's cached free blocks (and idle workspaces) back; waits for the backend
  // job in progress. Best effort: a backend that refuses (poisoned by a CUDA error) is skipped.
  void releaseDeviceCaches() noexcept;
  // Tests only (runtime/fault_injection.h): logical device d's injector, null when its
  // backend has none or there is no device d.
  FaultInjector* faultInjector(int device);
  // Tests only: Backend::matmulShapesPlanned of logical device d (-1: no device d). Waits for
  // the backend job in progress.
  int64_t matmulShapesPlanned(int device);
  // Tests only: Scheduler::holdForTesting / heldForTesting.
  void holdForTesting(int64_t iterations);
  bool heldForTesting() const;
  // The request checks submit() starts with (ivl::Error(InvalidArg) naming the
  // sequence and field); cheap, so bindings call it up front for a synchronous error.
  void validate(const GenerateRequest& req) const;

 private:
  friend class Scheduler;
  // Engine thread (the scheduler): one sequence's prompt through ViT + decoder into kv
  // (already reserved); scores[V] <- logits of its last position.
  void prefill(const SequenceInput& q, SequenceKv& kv, std::vector<float>& scores, const std::atomic<bool>* cancel);
  // ViT + projector over the tiles of several sequences in one batch; returns each
  // sequence's rows [tiles·n, H] on the embedding device (undefined for sequences without tiles).
  // A sequence whose tiles have the same pixels as an earlier one's in the batch (several
  // questions about one image) shares its rows: *encoded (optional) gets the tiles run.
  std::vector<Tensor> encodeTiles(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel,
                                  int64_t* encoded = nullptr);
  // One forward over several prompt pieces (continuing where each sequence's KV ends). For
  // each part that reaches the end of its prompt, scores[i] <- its last position's logits
  // (left empty otherwise). RoPE uses the whole prompt's length, as one unchunked call does.
  void prefillStep(const std::vector<PrefillPart>& parts, std::vector<std::vector<float>>& scores,
                   const std::atomic<bool>* cancel, const DecodeRows* decode = nullptr,
                   StepOutput* decodeOut = nullptr);
  int64_t prefillChunkTokens() const { return prefillChunkTokens_; }
  bool mixedSteps() const { return mixedSteps_; }
  bool visionAhead() const { return visionAhead_; }
  // The vision thread (EngineOptions::visionAhead): encodeTiles' rows left on the vision device,
  // its work finished (synchronized), without holding up the engine thread's steps.
  std::vector<Tensor> encodeAhead(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel,
                                  int64_t* encoded);
  // Engine thread: rows encodeAhead made, on the embedding device.
  Tensor adoptAhead(const Tensor& rows);
  // Out of memory on the vision thread: its device's cached blocks back (waits for its encode).
  void releaseVisionCache() noexcept;
  bool prefixCacheEnabled() const { return prefixCache_; }
  // One decode step: ids[i] appended to seqs[i] (one token each, at its own position); then
  // per row as rows[i] says: a greedy row's token (out.tokens), a sampled row's logits
  // (out.scores). Only the sampled rows' logits leave the device.
  void decodeStep(const std::vector<int32_t>& ids, const std::vector<SequenceKv*>& seqs,
                  const std::vector<RowSampling>& rows, StepOutput& out, const std::atomic<bool>* cancel);
  KvCache& kv() { return *kv_; }
  // The decode rows' choices from logits rows [rowOffset, rowOffset + rows.size()) (decodeStep
  // and the mixed prefill step): greedy on the device, sampled rows' logits downloaded.
  void pickDecodeTokens(const Tensor& logits, int64_t rowOffset, const std::vector<RowSampling>& rows, StepOutput& out);

  // EngineOptions::warmMatmulShapes: the first layer on each device and the head, at every row
  // count up to kWarmMaxRows (the CUDA backend times candidate kernels up to 32 rows).
  void warmMatmulShapes();
  static constexpr int64_t kWarmMaxRows = 32;
  // encodeTiles / encodeAhead: the ViT over the distinct sequences' tiles, rows on the vision
  // device (visionMutex_ held by the caller).
  struct VisionRows {
    Tensor all;                                       // [Σ distinct tiles · n, H]
    std::vector<std::pair<int64_t, int64_t>> span;    // per sequence: first row, rows (0: none)
    std::vector<Tensor> slices() const;
  };
  VisionRows encodeOnVision(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel, int64_t* encoded);
  Backend& visionBackend() { return *backends_.at(size_t(map_.vision)); }
  Backend& embedBackend() { return *backends_.at(size_t(map_.embed)); }

  ModelSpec spec_;
  std::vector<std::unique_ptr<Backend>> backends_;  // logical devices
  std::vector<Backend*> devices_;                   // the same, as the graph code takes them
  DeviceMap map_;
  int64_t prefillChunkTokens_ = EngineOptions::kDefaultPrefillChunkTokens;
  bool prefixCache_ = true;
  bool mixedSteps_ = false;
  bool visionAhead_ = false;
  ModelWeights weights_;
  std::unique_ptr<KvCache> kv_;
  std::mutex mutex_;  // one backend job at a time (prefill, decode step, encode)
  // The vision backend's jobs: with visionAhead the vision thread holds only this one, so its
  // encodes overlap the engine thread's steps; others take it after mutex_.
  std::mutex visionMutex_;
  std::unique_ptr<Scheduler> scheduler_;  // last: stopped before the rest goes
};

}  // namespace ivl
