#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "runtime/decoder.h"
#include "runtime/dummy_weights.h"
#include "runtime/rope.h"
#include "runtime/vision.h"

namespace ivl {

namespace {
std::string str(int64_t i) { return std::to_string(i); }
}  // namespace

Engine::Engine(std::unique_ptr<Backend> backend, const std::string& dir, const ModelSpec& spec,
               const EngineOptions& options)
    : spec_(spec), backend_(std::move(backend)) {
  spec_.validate();
  Checkpoint ckpt = options.dummyWeights ? dummyCheckpoint(spec_) : Checkpoint::open(dir);
  weights_ = loadWeights(spec_, ckpt, *backend_, options.quantize);  // checks every expected tensor first
  const int64_t tokens = options.kvCacheTokens > 0 ? options.kvCacheTokens : EngineOptions::kDefaultKvCacheTokens;
  kv_ = std::make_unique<KvCache>(*backend_, spec_.llm.numLayers, spec_.llm.numKvHeads, spec_.llm.headDim,
                                  options.kvBlockSize, tokens);
}

Engine::~Engine() = default;

std::vector<float> Engine::encodeVit(const float* pixels, int64_t tiles) {
  std::lock_guard<std::timed_mutex> lock(mutex_);
  const int64_t S = spec_.tileSize, G = spec_.patchGrid(), C = spec_.vision.hiddenSize, N = 1 + G * G;
  VisionEncoder enc(*backend_, spec_, weights_.vision);
  std::vector<float> out(size_t(tiles * N * C));  // [tiles, 1+G², C]
  for (int64_t t = 0; t < tiles; ++t) {
    Tensor px = backend_->uploadF32(pixels + t * 3 * S * S, {1, 3, S, S});
    backend_->downloadF32(enc.vit(px), out.data() + t * N * C);
  }
  return out;
}

std::vector<float> Engine::encodeImages(const float* pixels, int64_t tiles) {
  std::lock_guard<std::timed_mutex> lock(mutex_);
  VisionEncoder enc(*backend_, spec_, weights_.vision);
  Tensor emb = enc.encode(pixels, tiles);  // [tiles·n, H]
  std::vector<float> out(size_t(emb.numel()));
  backend_->downloadF32(emb, out.data());
  return out;
}

void Engine::validate(const GenerateRequest& req) const {
  auto bad = [](const std::string& m) { return Error(ErrorCode::InvalidArg, m); };
  if (req.sequences.empty()) throw bad("a generate request needs at least one sequence");
  if (req.maxNewTokens < 0) throw bad("maxNewTokens must be >= 0");
  const SamplingParams& s = req.sampling;
  if (!(s.temperature > 0) || !std::isfinite(s.temperature)) throw bad("sampling.temperature must be > 0");
  if (s.topK < 0) throw bad("sampling.topK must be >= 0");
  if (!(s.topP > 0 && s.topP <= 1)) throw bad("sampling.topP must be in (0, 1]");
  if (!(s.repetitionPenalty > 0) || !std::isfinite(s.repetitionPenalty)) {
    throw bad("sampling.repetitionPenalty must be > 0");
  }
  const int64_t S = spec_.tileSize, n = spec_.numImageToken(), V = vocabSize();
  for (size_t b = 0; b < req.sequences.size(); ++b) {
    const SequenceInput& q = req.sequences[b];
    const std::string who = "sequence " + str(int64_t(b)) + ": ";
    if (q.inputIds.empty()) throw bad(who + "inputIds is empty");
    for (int32_t id : q.inputIds) {
      if (id < 0 || id >= V) throw bad(who + "token id " + str(id) + " is out of range [0, " + str(V) + ")");
    }
    if (q.tiles < 0) throw bad(who + "tiles must be >= 0");
    if (int64_t(q.pixels.size()) != q.tiles * 3 * S * S) {
      throw bad(who + "pixelValues has " + str(int64_t(q.pixels.size())) + " values but " + str(q.tiles) +
                " tile(s) of 3×" + str(S) + "×" + str(S) + " need " + str(q.tiles * 3 * S * S));
    }
    const int64_t ctx = std::count(q.inputIds.begin(), q.inputIds.end(), int32_t(spec_.imageContextTokenId));
    if (ctx != q.tiles * n) {
      throw bad(who + "the prompt has " + str(ctx) + " <IMG_CONTEXT> tokens (id " + str(spec_.imageContextTokenId) +
                ") but " + str(q.tiles) + " tile(s) give " + str(q.tiles * n) + " image embeddings");
    }
  }
}

std::vector<SequenceResult> Engine::generate(const GenerateRequest& req, const TokenCallback& onToken,
                                             const std::atomic<bool>& cancel) {
  validate(req);
  // Wait for the engine, giving up when cancelled while waiting.
  std::unique_lock<std::timed_mutex> lock(mutex_, std::defer_lock);
  while (!lock.try_lock_for(std::chrono::milliseconds(20))) {
    if (cancel.load()) {
      std::vector<SequenceResult> out(req.sequences.size());
      for (size_t b = 0; b < out.size(); ++b) {
        out[b].finish = FinishReason::Aborted;
        out[b].promptTokens = int64_t(req.sequences[b].inputIds.size());
      }
      return out;
    }
  }
  return runGenerate(req, onToken, cancel);
}

std::vector<SequenceResult> Engine::runGenerate(const GenerateRequest& req, const TokenCallback& onToken,
                                                const std::atomic<bool>& cancel) {
  const LlmSpec& l = spec_.llm;
  const int64_t B = int64_t(req.sequences.size()), half = l.headDim / 2, bs = kv_->blockSize();
  const int32_t ctxId = int32_t(spec_.imageContextTokenId);
  VisionEncoder vision(*backend_, spec_, weights_.vision);
  Decoder decoder(*backend_, spec_, weights_.llm, *kv_);

  std::vector<SequenceResult> results(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) results[size_t(b)].promptTokens = int64_t(req.sequences[size_t(b)].inputIds.size());

  // 1. KV pages for every sequence, up front: the last token is never fed back.
  std::vector<int64_t> reserveTokens(static_cast<size_t>(B));
  int64_t needBlocks = 0, promptSum = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = results[size_t(b)].promptTokens;
    reserveTokens[size_t(b)] = L + std::max<int64_t>(0, req.maxNewTokens - 1);
    needBlocks += blocksFor(reserveTokens[size_t(b)], bs);
    promptSum += L;
  }
  if (needBlocks > kv_->allocator().numFree()) {
    throw Error(ErrorCode::OutOfMemory,
                "KV cache too small for this request: " + str(B) + " sequence(s) with " + str(promptSum) +
                    " prompt tokens and up to " + str(req.maxNewTokens) + " new tokens each need " + str(needBlocks) +
                    " blocks of " + str(bs) + " tokens, but " + str(kv_->allocator().numFree()) + " of " +
                    str(kv_->numBlocks()) + " blocks are free (capacity " + str(kv_->capacityTokens()) +
                    " tokens; raise kvCacheTokens or lower maxNewTokens)");
  }
  std::vector<SequenceKv> seqKv;
  seqKv.reserve(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    seqKv.emplace_back(*kv_);
    seqKv.back().reserve(reserveTokens[size_t(b)]);
  }

  std::vector<Xoshiro256> rng(size_t(B), Xoshiro256(req.sampling.seed));
  std::vector<bool> done(size_t(B), false);
  auto accept = [&](int64_t b, int32_t token) {
    SequenceResult& r = results[size_t(b)];
    r.tokens.push_back(token);
    if (onToken) onToken(b, token);
    if (std::find(req.eosTokenIds.begin(), req.eosTokenIds.end(), token) != req.eosTokenIds.end()) {
      r.finish = FinishReason::Eos;
      done[size_t(b)] = true;
    } else if (int64_t(r.tokens.size()) >= req.maxNewTokens) {
      r.finish = FinishReason::Length;
      done[size_t(b)] = true;
    }
    if (done[size_t(b)]) seqKv[size_t(b)].release();  // pages back to the pool now
  };
  std::vector<float> scores(static_cast<size_t>(vocabSize()));

  try {
    // 2. prefill, one sequence at a time
    for (int64_t b = 0; b < B; ++b) {
      checkCancel(&cancel);
      const SequenceInput& q = req.sequences[size_t(b)];
      const int64_t L = int64_t(q.inputIds.size());
      Tensor x = decoder.embed(q.inputIds);  // [L, H]
      if (q.tiles > 0) {
        Tensor img = vision.encode(q.pixels.data(), q.tiles, &cancel);  // [tiles·n, H]
        std::vector<int64_t> rows;  // <IMG_CONTEXT> positions, in order
        for (int64_t i = 0; i < L; ++i) {
          if (q.inputIds[size_t(i)] == ctxId) rows.push_back(i);
        }
        backend_->scatterRows(x, rows, img);
      }
      std::vector<int64_t> slots;
      std::vector<int32_t> positions;
      seqKv[size_t(b)].append(L, slots, positions);
      PagedBatch batch = buildBatch(bs, {&seqKv[size_t(b)]}, {L}, std::move(slots), std::move(positions));
      const RopeCall rc = ropeForCall(l, L);  // largest position in this call is L − 1
      std::vector<float> cos(size_t(L * half)), sin(size_t(L * half));
      for (int64_t i = 0; i < L; ++i) ropeRow(rc, i, cos.data() + i * half, sin.data() + i * half);
      Tensor logits = decoder.forward(std::move(x), batch, cos, sin, {L - 1}, &cancel);  // [1, V]
      backend_->downloadF32(logits, scores.data());
      if (req.returnPromptLogits) results[size_t(b)].promptLogits = scores;
      if (req.maxNewTokens == 0) {
        results[size_t(b)].finish = FinishReason::Length;
        done[size_t(b)] = true;
        seqKv[size_t(b)].release();
        continue;
      }
      accept(b, chooseToken(scores, req.sampling, results[size_t(b)].tokens, rng[size_t(b)]));
    }

    // 3. decode: every unfinished sequence advances one token per step
    for (;;) {
      std::vector<int64_t> active;
      for (int64_t b = 0; b < B; ++b) {
        if (!done[size_t(b)]) active.push_back(b);
      }
      if (active.empty()) break;
      checkCancel(&cancel);
      const int64_t A = int64_t(active.size());
      std::vector<int32_t> ids;
      std::vector<int64_t> slots, newTokens(size_t(A), 1), rows;
      std::vector<int32_t> positions;
      std::vector<const SequenceKv*> seqs;
      std::vector<float> cos(size_t(A * half)), sin(size_t(A * half));
      for (int64_t i = 0; i < A; ++i) {
        const int64_t b = active[size_t(i)];
        ids.push_back(results[size_t(b)].tokens.back());
        seqKv[size_t(b)].append(1, slots, positions);
        seqs.push_back(&seqKv[size_t(b)]);
        rows.push_back(i);
        const int64_t pos = positions.back();
        ropeRow(ropeForCall(l, pos + 1), pos, cos.data() + i * half, sin.data() + i * half);
      }
      PagedBatch batch = buildBatch(bs, seqs, newTokens, std::move(slots), std::move(positions));
      Tensor logits = decoder.forward(decoder.embed(ids), batch, cos, sin, rows, &cancel);  // [A, V]
      std::vector<float> all(size_t(A * vocabSize()));
      backend_->downloadF32(logits, all.data());
      for (int64_t i = 0; i < A; ++i) {
        const int64_t b = active[size_t(i)];
        std::copy(all.begin() + i * vocabSize(), all.begin() + (i + 1) * vocabSize(), scores.begin());
        accept(b, chooseToken(scores, req.sampling, results[size_t(b)].tokens, rng[size_t(b)]));
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Aborted) throw;
    for (int64_t b = 0; b < B; ++b) {
      if (!done[size_t(b)]) results[size_t(b)].finish = FinishReason::Aborted;
    }
  }
  return results;
}

}  // namespace ivl
