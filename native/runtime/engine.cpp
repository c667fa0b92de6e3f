#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "runtime/decoder.h"
#include "runtime/dummy_weights.h"
#include "runtime/rope.h"
#include "runtime/scheduler.h"
#include "runtime/vision.h"

namespace ivl {

namespace {
std::string str(int64_t i) { return std::to_string(i); }
}  // namespace

namespace {
std::vector<std::unique_ptr<Backend>> one(std::unique_ptr<Backend> b) {
  std::vector<std::unique_ptr<Backend>> v;
  v.push_back(std::move(b));
  return v;
}
}  // namespace

Engine::Engine(std::unique_ptr<Backend> backend, const std::string& dir, const ModelSpec& spec,
               const EngineOptions& options)
    : Engine(one(std::move(backend)), dir, spec, options) {}

Engine::Engine(std::vector<std::unique_ptr<Backend>> backends, const std::string& dir, const ModelSpec& spec,
               const EngineOptions& options)
    : spec_(spec), backends_(std::move(backends)), map_(options.deviceMap),
      prefillChunkTokens_(std::max<int64_t>(1, options.prefillChunkTokens)),
      prefixCache_(options.prefixCache),
      mixedSteps_(options.mixedSteps),
      visionAhead_(options.visionAhead) {
  spec_.validate();
  validateDeviceMap(map_, spec_.llm.numLayers);
  require(!visionAhead_ || visionAlone(map_), ErrorCode::InvalidArg,
          "engine: visionAhead needs the vision on a logical device of its own (withOwnVisionDevice), got " +
              map_.describe());
  require(int(backends_.size()) >= map_.numDevices(), ErrorCode::Internal,
          "engine: " + std::to_string(backends_.size()) + " backends for " + std::to_string(map_.numDevices()) +
              " devices");
  for (auto& b : backends_) devices_.push_back(b.get());
  Checkpoint ckpt = options.dummyWeights ? dummyCheckpoint(spec_) : Checkpoint::open(dir);
  // checks every expected tensor first
  weights_ = loadWeights(spec_, ckpt, devices_, map_, options.quantize, options.loadProgress);
  const int64_t tokens = options.kvCacheTokens > 0 ? options.kvCacheTokens : EngineOptions::kDefaultKvCacheTokens;
  // load-time scratch (bf16 rows being quantized) goes back before the KV cache
  for (Backend* b : devices_) b->releaseCache();
  std::vector<Backend*> layerDevices;
  for (int64_t i = 0; i < spec_.llm.numLayers; ++i) layerDevices.push_back(devices_[size_t(map_.layer(size_t(i)))]);
  kv_ = std::make_unique<KvCache>(layerDevices, spec_.llm.numKvHeads, spec_.llm.headDim, options.kvBlockSize, tokens);
  const char* warm = std::getenv("INTERNVL_WARM_MATMULS");
  if (options.warmMatmulShapes && !(warm && std::strcmp(warm, "0") == 0)) warmMatmulShapes();
  scheduler_ = std::make_unique<Scheduler>(*this);  // starts the engine thread
}

void Engine::warmMatmulShapes() {
  struct Linear {
    Backend* be;
    const Tensor* w;
    const Tensor* bias;
  };
  std::vector<Linear> linears;
  std::vector<Backend*> seen;
  for (size_t i = 0; i < weights_.llm.layers.size(); ++i) {
    Backend* be = devices_[size_t(map_.layer(i))];
    if (!be->tunesMatmulShapes() || std::find(seen.begin(), seen.end(), be) != seen.end()) continue;
    seen.push_back(be);  // every layer on a device has the same shapes: its first one stands for all
    const LlmLayerWeights& L = weights_.llm.layers[i];
    auto add = [&](const Tensor& w, const Tensor& b) {
      if (w.defined()) linears.push_back({be, &w, b.defined() ? &b : nullptr});
    };
    // the ones decoder.cpp runs: stacked when stacked
    if (L.wqkv.defined()) {
      add(L.wqkv, L.bqkv);
    } else {
      add(L.wq, L.bq);
      add(L.wk, L.bk);
      add(L.wv, L.bv);
    }
    add(L.wo, L.bo);
    if (L.gateUp.defined()) {
      add(L.gateUp, Tensor());
    } else {
      add(L.gate, Tensor());
      add(L.up, Tensor());
    }
    add(L.down, Tensor());
  }
  Backend* hb = devices_[size_t(map_.head)];
  if (hb->tunesMatmulShapes()) linears.push_back({hb, &weights_.llm.head, nullptr});
  if (linears.empty()) return;
  // bf16 weights only: the int8 path picks its launch per call; contents of x do not matter.
  // Best effort: a device too full for the scratch rows just starts cold.
  try {
    for (const Linear& l : linears) {
      if (l.w->dtype() != DType::BF16) continue;
      const int64_t N = l.w->dim(0), K = l.w->dim(1);
      for (int64_t m = 1; m <= kWarmMaxRows; ++m) {
        Tensor x = l.be->alloc(l.be->activationDType(), {m, K});
        Tensor y = l.be->alloc(l.be->activationDType(), {m, N});
        l.be->matmul(y, x, *l.w, l.bias);
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::OutOfMemory) throw;
  }
  for (Backend* b : devices_) {
    b->synchronize();
    b->releaseCache();
  }
}

std::string Engine::backendDetail() const {
  if (backends_.size() == 1 && map_.trivial()) return backends_[0]->describe();
  std::string s;
  for (size_t d = 0; d < backends_.size(); ++d) s += "[" + std::to_string(d) + "] " + backends_[d]->describe() + "; ";
  return s + "map: " + map_.describe();
}

Engine::~Engine() {
  if (scheduler_) scheduler_->shutdown();  // joins the engine thread before the weights and cache go
}

std::vector<float> Engine::encodeVit(const float* pixels, int64_t tiles) {
  std::scoped_lock lock(mutex_, visionMutex_);
  const int64_t S = spec_.tileSize, G = spec_.patchGrid(), C = spec_.vision.hiddenSize, N = 1 + G * G;
  Backend& be = visionBackend();
  VisionEncoder enc(be, spec_, weights_.vision);
  std::vector<float> out(size_t(tiles * N * C));  // [tiles, 1+G², C]
  for (int64_t t = 0; t < tiles; ++t) {
    Tensor px = be.uploadF32(pixels + t * 3 * S * S, {1, 3, S, S});
    be.downloadF32(enc.vit(px), out.data() + t * N * C);
  }
  return out;
}

std::vector<float> Engine::encodeImages(const float* pixels, int64_t tiles) {
  std::scoped_lock lock(mutex_, visionMutex_);
  VisionEncoder enc(visionBackend(), spec_, weights_.vision);
  Tensor emb = enc.encode(pixels, tiles);  // [tiles·n, H]
  std::vector<float> out(size_t(emb.numel()));
  visionBackend().downloadF32(emb, out.data());
  return out;
}

Engine::EncodeTimes Engine::timeEncode(const float* pixels, int64_t tiles, int reps) {
  std::scoped_lock lock(mutex_, visionMutex_);
  const int64_t S = spec_.tileSize;
  Backend& be = visionBackend();
  VisionEncoder enc(be, spec_, weights_.vision);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  EncodeTimes out;
  for (int r = 0; r < reps; ++r) {
    be.synchronize();
    const auto t0 = Clock::now();
    { Tensor px = be.uploadF32(pixels, {tiles, 3, S, S}); be.synchronize(); }
    const auto t1 = Clock::now();
    { Tensor emb = enc.encode(pixels, tiles); be.synchronize(); }
    const auto t2 = Clock::now();
    out.uploadS.push_back(seconds(t0, t1));
    out.encodeS.push_back(seconds(t1, t2));
  }
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

std::shared_ptr<Submission> Engine::submit(GenerateRequest req, TokenCallback onToken, DoneCallback onDone) {
  validate(req);
  return scheduler_->submit(std::move(req), std::move(onToken), std::move(onDone));
}

void Engine::cancel(const std::shared_ptr<Submission>& s) { scheduler_->cancel(s); }
void Engine::waitRetired(const std::shared_ptr<Submission>& s) { scheduler_->waitRetired(s); }
void Engine::shutdown() { scheduler_->shutdown(); }
SchedulerStats Engine::stats() const { return scheduler_->stats(); }

void Engine::releaseDeviceCaches() noexcept {
  std::scoped_lock lock(mutex_, visionMutex_);
  for (auto& b : backends_) {
    try {
      b->releaseCache();
    } catch (...) {  // its own requests fail with the backend's error; nothing to add here
    }
  }
}

void Engine::releaseVisionCache() noexcept {
  std::lock_guard<std::mutex> lock(visionMutex_);
  try {
    visionBackend().releaseCache();
  } catch (...) {  // a poisoned backend: the requests it fails report that
  }
}

int64_t Engine::matmulShapesPlanned(int device) {
  if (device < 0 || size_t(device) >= backends_.size()) return -1;
  std::lock_guard<std::mutex> lock(mutex_);
  return backends_[size_t(device)]->matmulShapesPlanned();
}

FaultInjector* Engine::faultInjector(int device) {
  if (device < 0 || size_t(device) >= backends_.size()) return nullptr;
  return backends_[size_t(device)]->faultInjector();
}

void Engine::holdForTesting(int64_t iterations) { scheduler_->holdForTesting(iterations); }
bool Engine::heldForTesting() const { return scheduler_->heldForTesting(); }

std::vector<DeviceMemory> Engine::deviceMemory() const {
  std::vector<DeviceMemory> out;
  for (const auto& b : backends_) {
    DeviceMemory m;
    if (b->deviceMemory(m)) out.push_back(m);
  }
  return out;
}

void Engine::prefill(const SequenceInput& q, SequenceKv& kv, std::vector<float>& scores,
                     const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(mutex_);
  const LlmSpec& l = spec_.llm;
  const int64_t half = l.headDim / 2, bs = kv_->blockSize(), L = int64_t(q.inputIds.size());
  const int32_t ctxId = int32_t(spec_.imageContextTokenId);
  VisionEncoder vision(visionBackend(), spec_, weights_.vision);
  Decoder decoder(devices_, map_, spec_, weights_.llm, *kv_);
  checkCancel(cancel);
  Tensor x = decoder.embed(q.inputIds);  // [L, H]
  if (q.tiles > 0) {
    Tensor img = vision.encode(q.pixels.data(), q.tiles, cancel);  // [tiles·n, H]
    if (map_.vision != map_.embed) img = embedBackend().copyFrom(img, visionBackend());
    std::vector<int64_t> rows;  // <IMG_CONTEXT> positions, in order
    for (int64_t i = 0; i < L; ++i) {
      if (q.inputIds[size_t(i)] == ctxId) rows.push_back(i);
    }
    embedBackend().scatterRows(x, rows, img);
  }
  std::vector<int64_t> slots;
  std::vector<int32_t> positions;
  kv.append(L, slots, positions);
  PagedBatch batch = buildBatch(bs, {&kv}, {L}, std::move(slots), std::move(positions));
  const RopeCall rc = ropeForCall(l, L);  // largest position in this call is L − 1
  std::vector<float> cos(size_t(L * half)), sin(size_t(L * half));
  for (int64_t i = 0; i < L; ++i) ropeRow(rc, i, cos.data() + i * half, sin.data() + i * half);
  Tensor logits = decoder.forward(std::move(x), batch, cos, sin, {L - 1}, cancel);  // [1, V]
  scores.resize(size_t(vocabSize()));
  devices_[size_t(map_.head)]->downloadF32(logits, scores.data());
}

std::vector<Tensor> Engine::encodeTiles(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel,
                                        int64_t* encoded) {
  std::scoped_lock lock(mutex_, visionMutex_);
  VisionRows v = encodeOnVision(seqs, cancel, encoded);
  if (v.all.defined() && map_.vision != map_.embed) v.all = embedBackend().copyFrom(v.all, visionBackend());
  return v.slices();
}

std::vector<Tensor> Engine::encodeAhead(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel,
                                        int64_t* encoded) {
  std::lock_guard<std::mutex> lock(visionMutex_);
  VisionRows v = encodeOnVision(seqs, cancel, encoded);
  visionBackend().synchronize();  // settled: adoptAhead copies without waiting on the vision stream
  return v.slices();
}

Tensor Engine::adoptAhead(const Tensor& rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (map_.vision == map_.embed) return rows;
  return embedBackend().copyFrom(rows, visionBackend(), true);
}

std::vector<Tensor> Engine::VisionRows::slices() const {
  std::vector<Tensor> out(span.size());
  for (size_t i = 0; i < span.size(); ++i) {
    if (span[i].second > 0) out[i] = all.slice0(span[i].first, span[i].second);
  }
  return out;
}

Engine::VisionRows Engine::encodeOnVision(const std::vector<TileRange>& seqs, const std::atomic<bool>* cancel,
                                          int64_t* encoded) {
  VisionRows v;
  v.span.assign(seqs.size(), {0, 0});
  const size_t tileFloats = size_t(3 * spec_.tileSize * spec_.tileSize);
  auto count = [&](size_t i) { return seqs[i].input->tiles - seqs[i].firstTile; };
  auto first = [&](size_t i) { return seqs[i].input->pixels.data() + size_t(seqs[i].firstTile) * tileFloats; };
  // same[i]: an earlier sequence with exactly the same tiles (bytes compared), or i itself
  std::vector<size_t> same(seqs.size());
  std::vector<float> pixels;  // the distinct sequences' tiles, one after another
  int64_t tiles = 0;
  const int64_t n = spec_.numImageToken();
  for (size_t i = 0; i < seqs.size(); ++i) {
    same[i] = i;
    const int64_t t = count(i);
    if (t == 0) continue;
    for (size_t j = 0; j < i; ++j) {
      if (same[j] == j && count(j) == t && std::memcmp(first(j), first(i), size_t(t) * tileFloats * sizeof(float)) == 0) {
        same[i] = j;
        break;
      }
    }
    if (same[i] != i) {
      v.span[i] = v.span[same[i]];
      continue;
    }
    pixels.insert(pixels.end(), first(i), first(i) + size_t(t) * tileFloats);
    v.span[i] = {tiles * n, t * n};
    tiles += t;
  }
  if (encoded) *encoded = tiles;
  if (tiles == 0) return v;
  VisionEncoder vision(visionBackend(), spec_, weights_.vision);
  v.all = vision.encode(pixels.data(), tiles, cancel);  // [Σtiles·n, H]
  return v;
}

void Engine::prefillStep(const std::vector<PrefillPart>& parts, std::vector<std::vector<float>>& scores,
                         const std::atomic<bool>* cancel, const DecodeRows* decode, StepOutput* decodeOut) {
  std::lock_guard<std::mutex> lock(mutex_);
  const LlmSpec& l = spec_.llm;
  const int64_t half = l.headDim / 2, bs = kv_->blockSize(), H = l.hiddenSize;
  const int32_t ctxId = int32_t(spec_.imageContextTokenId);
  Backend& eb = embedBackend();
  Decoder decoder(devices_, map_, spec_, weights_.llm, *kv_);
  checkCancel(cancel);
  std::vector<int32_t> ids;
  std::vector<int64_t> slots, counts, logitRows;
  std::vector<int32_t> positions;
  std::vector<const SequenceKv*> seqs;
  std::vector<float> cos, sin;
  for (const PrefillPart& p : parts) {
    const std::vector<int32_t>& all = p.input->inputIds;
    require(p.begin >= 0 && p.count > 0 && p.begin + p.count <= int64_t(all.size()) && p.kv->length() == p.begin,
            ErrorCode::Internal, "prefillStep: a part does not continue its sequence");
    ids.insert(ids.end(), all.begin() + p.begin, all.begin() + p.begin + p.count);
    p.kv->append(p.count, slots, positions);
    seqs.push_back(p.kv);
    counts.push_back(p.count);
    const RopeCall rc = ropeForCall(l, int64_t(all.size()));  // as the unchunked prompt
    for (int64_t t = p.begin; t < p.begin + p.count; ++t) {
      cos.resize(cos.size() + size_t(half));
      sin.resize(sin.size() + size_t(half));
      ropeRow(rc, t, cos.data() + cos.size() - half, sin.data() + sin.size() - half);
    }
    if (p.begin + p.count == int64_t(all.size())) logitRows.push_back(int64_t(ids.size()) - 1);
  }
  const int64_t prefillRows = int64_t(logitRows.size());
  if (decode) {
    // after every prompt row: one row per running sequence, at its own position, RoPE as in
    // decodeStep; its logits row follows the prompts' ones
    require(decodeOut && decode->ids.size() == decode->seqs.size() && decode->ids.size() == decode->sampling.size(),
            ErrorCode::Internal, "prefillStep: decode rows do not match");
    for (size_t i = 0; i < decode->ids.size(); ++i) {
      ids.push_back(decode->ids[i]);
      decode->seqs[i]->append(1, slots, positions);
      seqs.push_back(decode->seqs[i]);
      counts.push_back(1);
      const int64_t pos = positions.back();
      cos.resize(cos.size() + size_t(half));
      sin.resize(sin.size() + size_t(half));
      ropeRow(ropeForCall(l, pos + 1), pos, cos.data() + cos.size() - half, sin.data() + sin.size() - half);
      logitRows.push_back(int64_t(ids.size()) - 1);
    }
  }
  Tensor x = decoder.embed(ids);  // [T, H]
  int64_t row0 = 0;
  for (const PrefillPart& p : parts) {
    if (p.image.defined()) {
      // this chunk's <IMG_CONTEXT> rows take image rows from the count of those before it
      const std::vector<int32_t>& all = p.input->inputIds;
      int64_t imageRow = std::count(all.begin(), all.begin() + p.begin, ctxId) - p.imageRowBase;
      std::vector<int64_t> from, to;
      for (int64_t t = p.begin; t < p.begin + p.count; ++t) {
        if (all[size_t(t)] != ctxId) continue;
        from.push_back(imageRow++);
        to.push_back(row0 + t - p.begin);
      }
      if (!from.empty()) {
        Tensor rows = eb.alloc(eb.activationDType(), {int64_t(from.size()), H});
        eb.gatherRows(rows, p.image, from);
        eb.scatterRows(x, to, rows);
      }
    }
    row0 += p.count;
  }
  PagedBatch batch = buildBatch(bs, seqs, counts, std::move(slots), std::move(positions));
  Tensor logits = decoder.forward(std::move(x), batch, cos, sin, logitRows, cancel);  // [R, V]
  std::vector<float> all(size_t(prefillRows * vocabSize()));
  if (!all.empty()) {
    std::vector<int64_t> rows(static_cast<size_t>(prefillRows));
    for (int64_t i = 0; i < prefillRows; ++i) rows[size_t(i)] = i;
    devices_[size_t(map_.head)]->downloadRowsF32(logits, rows, all.data());
  }
  if (decode) pickDecodeTokens(logits, prefillRows, decode->sampling, *decodeOut);
  scores.assign(parts.size(), {});
  const int64_t V = vocabSize();
  size_t r = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const PrefillPart& p = parts[i];
    if (p.begin + p.count != int64_t(p.input->inputIds.size())) continue;
    scores[i].assign(all.begin() + int64_t(r) * V, all.begin() + int64_t(r + 1) * V);
    ++r;
  }
}

void Engine::decodeStep(const std::vector<int32_t>& ids, const std::vector<SequenceKv*>& seqs,
                        const std::vector<RowSampling>& rowSampling, StepOutput& out, const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(mutex_);
  const LlmSpec& l = spec_.llm;
  const int64_t A = int64_t(seqs.size()), half = l.headDim / 2, bs = kv_->blockSize();
  Decoder decoder(devices_, map_, spec_, weights_.llm, *kv_);
  std::vector<int64_t> slots, newTokens(size_t(A), 1), rows;
  std::vector<int32_t> positions;
  std::vector<const SequenceKv*> cseqs;
  std::vector<float> cos(size_t(A * half)), sin(size_t(A * half));
  for (int64_t i = 0; i < A; ++i) {
    seqs[size_t(i)]->append(1, slots, positions);
    cseqs.push_back(seqs[size_t(i)]);
    rows.push_back(i);
    const int64_t pos = positions.back();
    ropeRow(ropeForCall(l, pos + 1), pos, cos.data() + i * half, sin.data() + i * half);
  }
  PagedBatch batch = buildBatch(bs, cseqs, newTokens, std::move(slots), std::move(positions));
  Tensor logits = decoder.forward(decoder.embed(ids), batch, cos, sin, rows, cancel);  // [A, V]
  require(int64_t(rowSampling.size()) == A, ErrorCode::Internal, "decodeStep: one RowSampling per row");
  pickDecodeTokens(logits, 0, rowSampling, out);
}

void Engine::pickDecodeTokens(const Tensor& logits, int64_t rowOffset, const std::vector<RowSampling>& rowSampling,
                              StepOutput& out) {
  const int64_t A = int64_t(rowSampling.size());
  Backend& hb = *devices_[size_t(map_.head)];
  std::vector<Backend::GreedyRow> greedy;
  std::vector<int64_t> sampledLogitRows;
  out.tokens.assign(size_t(A), -1);
  out.sampledRows.clear();
  out.scores = nullptr;
  for (int64_t i = 0; i < A; ++i) {
    const RowSampling& r = rowSampling[size_t(i)];
    if (r.params->doSample) {
      out.sampledRows.push_back(i);
      sampledLogitRows.push_back(rowOffset + i);
    } else {
      greedy.push_back({rowOffset + i, r.params->repetitionPenalty, r.generated});
    }
  }
  if (!greedy.empty()) {
    std::vector<int32_t> chosen(greedy.size());
    hb.greedyTokens(logits, greedy, chosen.data());
    for (size_t g = 0; g < greedy.size(); ++g) out.tokens[size_t(greedy[g].row - rowOffset)] = chosen[g];
  }
  if (!out.sampledRows.empty()) {
    const size_t n = out.sampledRows.size() * size_t(vocabSize());
    float* dst = hb.downloadStaging(n);
    if (!dst) {
      out.hostScores.resize(n);  // grow-only: the caller keeps `out` between steps
      dst = out.hostScores.data();
    }
    hb.downloadRowsF32(logits, sampledLogitRows, dst);
    out.scores = dst;
  }
}

}  // namespace ivl
